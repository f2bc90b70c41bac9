//! Device rules as a `BPF_PROG_TYPE_CGROUP_DEVICE` program, for cgroup v2.
//!
//! The kernel calls the program with `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` (`access_type` = access bits << 16 | device type) and allows the operation
//! when it returns 1. Only rule lists of Docker's shape are translated: a first rule denying
//! everything, then allows; each allow becomes one block of compares that returns 1 on a
//! match, and the program ends returning 0.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// One `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst in the low 4 bits, src in the high 4.
    regs: u8,
    off: i16,
    imm: i32,
}

const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const MOV64_REG: u8 = 0xbf; // dst = src
const MOV64_IMM: u8 = 0xb7; // dst = imm
const AND64_IMM: u8 = 0x57; // dst &= imm
const RSH64_IMM: u8 = 0x77; // dst >>= imm
const JNE_IMM: u8 = 0x55; // if dst != imm goto +off
const EXIT: u8 = 0x95;

// Registers: r1 the context; r2 type, r3 access, r4 major, r5 minor; r0 scratch and result.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// `BPF_DEVCG_DEV_*` of a rule's type (`None`: any).
fn dev_type(t: Option<LinuxDeviceType>) -> Option<i32> {
    match t {
        None | Some(LinuxDeviceType::A) => None,
        Some(LinuxDeviceType::B) => Some(1),
        Some(_) => Some(2),
    }
}

/// `BPF_DEVCG_ACC_*` bits of an access string.
fn access_bits(a: &str) -> i32 {
    a.chars()
        .map(|c| match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => 0,
        })
        .fold(0, |x, b| x | b)
}

/// The program for `rules`, or `None` when they are not of the shape translated here.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Option<Vec<Insn>> {
    let (first, allows) = rules.split_first()?;
    let deny_all = !first.allow()
        && dev_type(first.typ()).is_none()
        && first.major().is_none()
        && first.minor().is_none()
        && access_bits(first.access().as_deref().unwrap_or("rwm")) == 7;
    if !deny_all || allows.iter().any(|r| !r.allow()) {
        return None;
    }
    let mut p = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(MOV64_REG, R3, R2, 0, 0),
        insn(AND64_IMM, R2, 0, 0, 0xffff),
        insn(RSH64_IMM, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    for r in allows {
        // Each compare jumps past the rest of this block (counted once the block is built).
        let mut block: Vec<Insn> = Vec::new();
        if let Some(t) = dev_type(r.typ()) {
            block.push(insn(JNE_IMM, R2, 0, 0, t));
        }
        let access = access_bits(r.access().as_deref().unwrap_or("rwm"));
        if access != 7 {
            // Some requested access bit outside the allowed ones: no match.
            block.push(insn(MOV64_REG, R0, R3, 0, 0));
            block.push(insn(AND64_IMM, R0, 0, 0, !access));
            block.push(insn(JNE_IMM, R0, 0, 0, 0));
        }
        if let Some(m) = r.major() {
            block.push(insn(JNE_IMM, R4, 0, 0, i32::try_from(m).ok()?));
        }
        if let Some(m) = r.minor() {
            block.push(insn(JNE_IMM, R5, 0, 0, i32::try_from(m).ok()?));
        }
        block.push(insn(MOV64_IMM, R0, 0, 0, 1));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, b) in block.iter_mut().enumerate() {
            if b.code == JNE_IMM {
                b.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(MOV64_IMM, R0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    Some(p)
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD (the rest zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    _rest: [u64; 8],
}

/// The leading fields of `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    _rest: [u64; 4],
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-padded prefix of `union bpf_attr` of the given size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>() as libc::c_long,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Load `prog` and attach it to the cgroup directory `cgroup` (the attachment keeps the
/// program; the fd is closed here).
pub fn load_and_attach(prog: &[Insn], cgroup: &std::fs::File) -> io::Result<()> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"kiln_device");
    let load = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &load)?;
    // SAFETY: BPF_PROG_LOAD returned a new fd owned here.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attach = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &attach).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_rules_become_one_block_per_allow() {
        let p = program(&crate::default_device_rules()).unwrap();
        // Prologue, 11 allows, epilogue.
        assert_eq!(p[..6].len(), 6);
        assert_eq!(p.last().unwrap().code, EXIT);
        // `c *:* m`: type compare, access check (3), return 1 (2).
        assert_eq!(p[6], insn(JNE_IMM, R2, 0, 5, 2));
        assert_eq!(p[8], insn(AND64_IMM, R0, 0, 0, !1));
        // `c 1:3 rwm`: type, major, minor, return 1.
        let rule = program(&crate::default_device_rules()[..4]).unwrap();
        assert_eq!(
            rule[rule.len() - 7..rule.len() - 3],
            [
                insn(JNE_IMM, R2, 0, 4, 2),
                insn(JNE_IMM, R4, 0, 3, 1),
                insn(JNE_IMM, R5, 0, 2, 3),
                insn(MOV64_IMM, R0, 0, 0, 1),
            ]
        );
        let mut odd = crate::default_device_rules();
        odd.swap(0, 1);
        assert!(program(&odd).is_none(), "not Docker's shape");
    }
}
