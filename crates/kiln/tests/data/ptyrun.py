#!/usr/bin/env python3
"""Runs a command on a fresh pty of a given size; a script of steps drives it.
usage: ptyrun.py ROWS COLS STEPS_JSON -- cmd args...
steps: [["expect", "text", timeout], ["send", "text"], ["sleep", s], ["resize", rows, cols]]
Prints the transcript to stdout and exits with the command's exit code."""
import os, sys, pty, json, time, select, struct, fcntl, termios, subprocess
rows, cols, steps = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
cmd = sys.argv[sys.argv.index('--') + 1:]
master, slave = os.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
os.close(slave)
out = b''
def pump(t):
    global out
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([master], [], [], max(0, end - time.time()))
        if not r: return
        try: d = os.read(master, 4096)
        except OSError: return
        if not d: return
        out += d
for st in steps:
    if st[0] == 'expect':
        end = time.time() + (st[2] if len(st) > 2 else 10)
        while st[1].encode() not in out and time.time() < end:
            pump(0.05)
        if st[1].encode() not in out:
            sys.stdout.write(out.decode(errors='replace')); sys.stderr.write('\nTIMEOUT expecting %r\n' % st[1]); p.kill(); sys.exit(99)
    elif st[0] == 'send':
        os.write(master, st[1].encode())
    elif st[0] == 'sleep':
        pump(st[1])
    elif st[0] == 'resize':
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack('HHHH', st[1], st[2], 0, 0))
        os.kill(p.pid, 28)  # SIGWINCH: the pty is not its controlling terminal
end = time.time() + 20
while p.poll() is None and time.time() < end:
    pump(0.05)
pump(0.2)
if p.poll() is None:
    p.kill(); sys.stdout.write(out.decode(errors='replace')); sys.stderr.write('\nTIMEOUT waiting for exit\n'); sys.exit(98)
sys.stdout.write(out.decode(errors='replace'))
sys.exit(p.returncode)
