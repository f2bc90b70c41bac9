//! The OCI spec's `linux.seccomp` compiled to a classic BPF program for
//! `seccomp(SECCOMP_SET_MODE_FILTER)`, as libseccomp would: one block per architecture the
//! filter names (and this machine's), each a binary search over spans of syscall numbers with
//! one return, each call's rules tried in turn (argument rules first), and the default action
//! for anything else.
//! Arguments compare as 64-bit unsigned values (as two 32-bit halves) on 64-bit
//! architectures, as their low 32 bits on 32-bit ones.

use std::collections::BTreeMap;

use libc::sock_filter;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator,
};

use super::syscall_tables as tables;

// Classic BPF opcodes (linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;

// struct seccomp_data offsets (little-endian 64-bit args: the low half first).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg_lo(i: usize) -> u32 {
    16 + 8 * i as u32
}
const fn off_arg_hi(i: usize) -> u32 {
    20 + 8 * i as u32
}

// SECCOMP_RET_* (linux/seccomp.h).
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

/// The kernel's limit on a filter's length (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;
/// x32 calls arrive under AUDIT_ARCH_X86_64 with this bit set in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// An architecture the filter can hold a block for.
struct ArchInfo {
    audit: u32,
    table: &'static [(&'static str, u32)],
    wide_args: bool,
}

fn arch_info(a: Arch) -> Option<ArchInfo> {
    let (audit, table, wide_args) = match a {
        Arch::ScmpArchX86_64 => (0xc000_003e, tables::X86_64, true),
        Arch::ScmpArchX32 => (0xc000_003e, tables::X32, true),
        Arch::ScmpArchX86 => (0x4000_0003, tables::X86, false),
        Arch::ScmpArchAarch64 => (0xc000_00b7, tables::AARCH64, true),
        Arch::ScmpArchArm => (0x4000_0028, tables::ARM, false),
        _ => return None,
    };
    Some(ArchInfo {
        audit,
        table,
        wide_args,
    })
}

/// The number of `name` on `arch`, if it has that call.
pub fn syscall_number(arch: Arch, name: &str) -> Option<u32> {
    let table = arch_info(arch)?.table;
    table
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| table[i].1)
}

/// Why a filter cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("seccomp: {0}")]
pub struct CompileError(pub String);

type Label = usize;

/// An instruction whose jumps name labels, resolved to offsets at the end.
enum Insn {
    Stmt(u16, u32),
    Jump {
        code: u16,
        k: u32,
        jt: Option<Label>,
        jf: Option<Label>,
    },
    Ja(Label),
    Here(Label),
}

#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.insns.push(Insn::Stmt(code, k));
    }
    /// A conditional jump; `None` means the next instruction.
    fn jump(&mut self, code: u16, k: u32, jt: Option<Label>, jf: Option<Label>) {
        self.insns.push(Insn::Jump { code, k, jt, jf });
    }
    fn here(&mut self, l: Label) {
        self.insns.push(Insn::Here(l));
    }
    fn ret(&mut self, k: u32) {
        self.stmt(RET_K, k);
    }

    fn finish(self) -> Result<Vec<sock_filter>, CompileError> {
        let mut at = vec![usize::MAX; self.labels];
        let mut pc = 0;
        for i in &self.insns {
            match i {
                Insn::Here(l) => at[*l] = pc,
                _ => pc += 1,
            }
        }
        if pc > MAX_INSNS {
            return Err(CompileError(format!(
                "the filter needs {pc} BPF instructions, more than the kernel's {MAX_INSNS}"
            )));
        }
        let mut out = Vec::with_capacity(pc);
        for i in self.insns {
            let pc = out.len();
            let rel = |l: Label| at[l] - (pc + 1);
            let f = match i {
                Insn::Here(_) => continue,
                Insn::Stmt(code, k) => sock_filter {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                },
                Insn::Ja(l) => sock_filter {
                    code: JMP_JA,
                    jt: 0,
                    jf: 0,
                    k: rel(l) as u32,
                },
                Insn::Jump { code, k, jt, jf } => {
                    let short = |l: Option<Label>| -> Result<u8, CompileError> {
                        let d = l.map_or(0, rel);
                        u8::try_from(d).map_err(|_| {
                            CompileError(format!("a rule's conditions span {d} instructions, more than a BPF jump reaches"))
                        })
                    };
                    sock_filter {
                        code,
                        jt: short(jt)?,
                        jf: short(jf)?,
                        k,
                    }
                }
            };
            out.push(f);
        }
        Ok(out)
    }
}

/// One architecture's calls by number: argument rules (in order) and the plain rule's return.
type Calls = BTreeMap<u32, (Vec<Alt>, Option<u32>)>;

/// What a call's rule does when its arguments match.
struct Alt {
    args: Vec<LinuxSeccompArg>,
    ret: u32,
}

/// The seccomp return value of `action`.
fn ret_of(
    action: LinuxSeccompAction,
    errno: Option<u32>,
    default_errno: u32,
) -> Result<u32, CompileError> {
    let data = errno.unwrap_or(default_errno) & 0xffff;
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data,
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(CompileError(
                "SCMP_ACT_NOTIFY needs a seccomp agent, which kiln does not run".into(),
            ));
        }
    })
}

/// Compile `s` for `native` (this machine's architecture) and the architectures `s` names.
/// A process of an architecture the filter has no block for is killed, as libseccomp does.
pub fn compile(s: &LinuxSeccomp, native: Arch) -> Result<Vec<sock_filter>, CompileError> {
    let default_errno = s.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default = ret_of(s.default_action(), None, default_errno)?;
    let mut arches = vec![native];
    for a in s.architectures().iter().flatten() {
        if !arches.contains(a) {
            arches.push(*a);
        }
    }
    if arch_info(native).is_none() {
        return Err(CompileError(format!(
            "kiln has no syscall table for this machine's architecture ({native:?})"
        )));
    }
    // Rules per architecture, grouped by syscall number (argument rules before plain ones).
    let mut blocks: Vec<(ArchInfo, Calls)> = Vec::new();
    let has_x32 = arches.contains(&Arch::ScmpArchX32);
    for a in &arches {
        let Some(info) = arch_info(*a) else { continue };
        let mut calls: Calls = BTreeMap::new();
        for rule in s.syscalls().iter().flatten() {
            let ret = ret_of(rule.action(), rule.errno_ret(), libc::EPERM as u32)?;
            let args = rule.args().clone().unwrap_or_default();
            for a in &args {
                if a.index() > 5 {
                    return Err(CompileError(format!(
                        "argument index {} of {:?}: a syscall has 6 arguments (0-5)",
                        a.index(),
                        rule.names()
                    )));
                }
            }
            for name in rule.names() {
                // Calls this architecture lacks are skipped, as runc and libseccomp do.
                let Ok(i) = info.table.binary_search_by(|(n, _)| n.cmp(&name.as_str())) else {
                    continue;
                };
                let entry = calls.entry(info.table[i].1).or_default();
                if args.is_empty() {
                    entry.1.get_or_insert(ret);
                } else {
                    entry.0.push(Alt {
                        args: args.clone(),
                        ret,
                    });
                }
            }
        }
        blocks.push((info, calls));
    }
    // x32 shares x86_64's audit arch: its calls are found by number inside the x86_64 block.
    let x32 = if has_x32 {
        blocks
            .iter()
            .position(|(i, _)| std::ptr::eq(i.table, tables::X32))
            .map(|p| blocks.remove(p).1)
    } else {
        None
    };

    let mut asm = Asm::default();
    asm.stmt(LD_W_ABS, OFF_ARCH);
    let starts: Vec<Label> = blocks.iter().map(|_| asm.label()).collect();
    for ((info, _), start) in blocks.iter().zip(&starts) {
        let skip = asm.label();
        asm.jump(JMP_JEQ_K, info.audit, None, Some(skip));
        asm.insns.push(Insn::Ja(*start));
        asm.here(skip);
    }
    asm.ret(RET_KILL_PROCESS);
    for ((info, calls), start) in blocks.iter().zip(&starts) {
        asm.here(*start);
        asm.stmt(LD_W_ABS, OFF_NR);
        let list: Vec<_> = calls.iter().collect();
        if std::ptr::eq(info.table, tables::X86_64) {
            // Numbers with the x32 bit are x32's calls: its rules, or the default.
            let native = asm.label();
            asm.jump(JMP_JGE_K, X32_SYSCALL_BIT, None, Some(native));
            match &x32 {
                Some(calls) => {
                    let x32_start = asm.label();
                    asm.insns.push(Insn::Ja(x32_start));
                    asm.here(native);
                    tree(&mut asm, &list, info.wide_args, default);
                    asm.here(x32_start);
                    let x32_list: Vec<_> = calls.iter().collect();
                    tree(&mut asm, &x32_list, true, default);
                }
                None => {
                    asm.ret(default);
                    asm.here(native);
                    tree(&mut asm, &list, info.wide_args, default);
                }
            }
        } else {
            tree(&mut asm, &list, info.wide_args, default);
        }
    }
    asm.finish()
}

type Call<'a> = (&'a u32, &'a (Vec<Alt>, Option<u32>));

/// What the numbers from `start` up to the next span's start get.
enum Span<'a> {
    Ret(u32),
    /// One call with argument rules (the span is that number alone).
    Rules(&'a [Alt], u32),
}

/// The whole number range as spans, neighbours with the same return merged: Docker's profile
/// allows long runs of consecutive calls, so a search over spans is a fraction of one over
/// calls (a shorter filter is quicker to attach: the kernel JIT-compiles it per container).
fn spans<'a>(calls: &[Call<'a>], default: u32) -> Vec<(u32, Span<'a>)> {
    let mut out: Vec<(u32, Span)> = Vec::new();
    let push = |out: &mut Vec<(u32, Span<'a>)>, start: u32, span: Span<'a>| {
        if let (Some((_, Span::Ret(last))), Span::Ret(r)) = (out.last(), &span)
            && last == r
        {
            return;
        }
        out.push((start, span));
    };
    let mut next = 0u32;
    for (nr, (alts, plain)) in calls {
        let (nr, ret) = (**nr, plain.unwrap_or(default));
        if nr > next {
            push(&mut out, next, Span::Ret(default));
        }
        let span = if alts.is_empty() {
            Span::Ret(ret)
        } else {
            Span::Rules(alts, ret)
        };
        push(&mut out, nr, span);
        next = nr.saturating_add(1);
    }
    if next != 0 {
        push(&mut out, next, Span::Ret(default));
    }
    if out.is_empty() {
        out.push((0, Span::Ret(default)));
    }
    out
}

/// A binary search over the spans of `calls` (sorted by number; A holds the number).
fn tree(asm: &mut Asm, calls: &[Call], wide: bool, default: u32) {
    search(asm, &spans(calls, default), wide);
}

fn search(asm: &mut Asm, spans: &[(u32, Span)], wide: bool) {
    if let [(_, span)] = spans {
        match span {
            Span::Ret(r) => asm.ret(*r),
            Span::Rules(alts, plain) => {
                for alt in *alts {
                    let fail = asm.label();
                    for a in &alt.args {
                        condition(asm, a, wide, fail);
                    }
                    asm.ret(alt.ret);
                    asm.here(fail);
                }
                asm.ret(*plain);
            }
        }
        return;
    }
    let (low, high) = spans.split_at(spans.len() / 2);
    let to_high = asm.label();
    let to_low = asm.label();
    asm.jump(JMP_JGE_K, high[0].0, None, Some(to_low));
    asm.insns.push(Insn::Ja(to_high));
    asm.here(to_low);
    search(asm, low, wide);
    asm.here(to_high);
    search(asm, high, wide);
}

/// Fall through if argument `a` holds, jump to `fail` if not. Clobbers A.
fn condition(asm: &mut Asm, a: &LinuxSeccompArg, wide: bool, fail: Label) {
    let i = a.index();
    let (v_hi, v_lo) = ((a.value() >> 32) as u32, a.value() as u32);
    let pass = asm.label();
    use LinuxSeccompOperator as Op;
    match a.op() {
        Op::ScmpCmpMaskedEq => {
            // value is the mask, valueTwo the datum (libseccomp's order).
            let d = a.value_two().unwrap_or(0);
            let (d_hi, d_lo) = ((d >> 32) as u32, d as u32);
            if wide {
                asm.stmt(LD_W_ABS, off_arg_hi(i));
                asm.stmt(ALU_AND_K, v_hi);
                asm.jump(JMP_JEQ_K, d_hi, None, Some(fail));
            }
            asm.stmt(LD_W_ABS, off_arg_lo(i));
            asm.stmt(ALU_AND_K, v_lo);
            asm.jump(JMP_JEQ_K, d_lo, None, Some(fail));
        }
        Op::ScmpCmpEq => {
            if wide {
                asm.stmt(LD_W_ABS, off_arg_hi(i));
                asm.jump(JMP_JEQ_K, v_hi, None, Some(fail));
            }
            asm.stmt(LD_W_ABS, off_arg_lo(i));
            asm.jump(JMP_JEQ_K, v_lo, None, Some(fail));
        }
        Op::ScmpCmpNe => {
            if wide {
                asm.stmt(LD_W_ABS, off_arg_hi(i));
                asm.jump(JMP_JEQ_K, v_hi, None, Some(pass));
            }
            asm.stmt(LD_W_ABS, off_arg_lo(i));
            asm.jump(JMP_JEQ_K, v_lo, Some(fail), None);
        }
        // Greater (or equal): a high half above passes, below fails, equal compares the low.
        Op::ScmpCmpGt | Op::ScmpCmpGe => {
            if wide {
                asm.stmt(LD_W_ABS, off_arg_hi(i));
                asm.jump(JMP_JGT_K, v_hi, Some(pass), None);
                asm.jump(JMP_JEQ_K, v_hi, None, Some(fail));
            }
            asm.stmt(LD_W_ABS, off_arg_lo(i));
            let code = if a.op() == Op::ScmpCmpGt {
                JMP_JGT_K
            } else {
                JMP_JGE_K
            };
            asm.jump(code, v_lo, None, Some(fail));
        }
        // Less (or equal): the negation of greater-or-equal (greater).
        Op::ScmpCmpLt | Op::ScmpCmpLe => {
            if wide {
                asm.stmt(LD_W_ABS, off_arg_hi(i));
                asm.jump(JMP_JGT_K, v_hi, Some(fail), None);
                asm.jump(JMP_JEQ_K, v_hi, None, Some(pass));
            }
            asm.stmt(LD_W_ABS, off_arg_lo(i));
            let code = if a.op() == Op::ScmpCmpLt {
                JMP_JGE_K
            } else {
                JMP_JGT_K
            };
            asm.jump(code, v_lo, Some(fail), None);
        }
    }
    asm.here(pass);
}
