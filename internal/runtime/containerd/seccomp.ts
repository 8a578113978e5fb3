// Seccomp for the OCI spec: Skiff's own RuntimeDefault allowlist, and Localhost profiles read
// from the node.
//
// RuntimeDefault is written for this project from the Linux system-call manual pages (syscalls(2)
// and each call's page), grouped by what a normal program does: files, memory, processes,
// signals, time, sockets, polling. What it leaves out is what a container has no business doing
// without extra capabilities: namespaces (unshare, setns, clone with CLONE_NEW* flags), mounts,
// kernel modules, keyrings, bpf, perf, reboot, swap, clock setting, ptrace and friends, and
// io_uring (a large kernel surface; programs fall back to ordinary reads and writes). Some of
// those come back when the container is granted the capability that makes them meaningful.
// A refused call fails with EPERM; clone3 fails with ENOSYS, so the C library falls back to
// clone, whose flags the filter can inspect (clone3's sit in a struct it cannot read).
import { readFileSync } from "node:fs";

type Action = "SCMP_ACT_ALLOW" | "SCMP_ACT_ERRNO";

interface SyscallRule {
  names: string[];
  action: Action;
  errnoRet?: number;
  args?: { index: number; value: number; valueTwo?: number; op: string }[];
}

export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  syscalls?: SyscallRule[];
}

const EPERM = 1;
const ENOSYS = 38;

// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
const CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;

const FILES = [
  "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
  "open", "openat", "openat2", "creat", "close", "close_range", "lseek", "_llseek",
  "stat", "fstat", "lstat", "newfstatat", "statx", "stat64", "fstat64", "lstat64", "fstatat64", "statfs", "fstatfs", "statfs64", "fstatfs64",
  "access", "faccessat", "faccessat2", "getdents", "getdents64", "readlink", "readlinkat",
  "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat",
  "mknod", "mknodat", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat", "chown32", "fchown32", "lchown32",
  "truncate", "ftruncate", "truncate64", "ftruncate64", "fallocate", "fadvise64", "fadvise64_64", "readahead",
  "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
  "dup", "dup2", "dup3", "fcntl", "fcntl64", "flock", "ioctl", "pipe", "pipe2",
  "sendfile", "sendfile64", "splice", "tee", "vmsplice", "copy_file_range",
  "chdir", "fchdir", "getcwd", "umask", "utime", "utimes", "futimesat", "utimensat", "utimensat_time64",
  "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr", "llistxattr", "flistxattr",
  "removexattr", "lremovexattr", "fremovexattr",
  "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "fanotify_mark",
  "memfd_create", "name_to_handle_at", "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents",
];

const MEMORY = [
  "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "pkey_mprotect", "pkey_alloc", "pkey_free", "madvise",
  "mlock", "mlock2", "munlock", "mlockall", "munlockall", "mincore", "msync", "membarrier",
  "get_mempolicy", "set_mempolicy", "mbind",
];

const PROCESSES = [
  "execve", "execveat", "fork", "vfork", "exit", "exit_group", "wait4", "waitid", "waitpid",
  "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
  "getuid", "geteuid", "getgid", "getegid", "getuid32", "geteuid32", "getgid32", "getegid32",
  "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "getresuid", "getresgid",
  "setuid32", "setgid32", "setreuid32", "setregid32", "setresuid32", "setresgid32", "getresuid32", "getresgid32",
  "setfsuid", "setfsgid", "setfsuid32", "setfsgid32", "getgroups", "setgroups", "getgroups32", "setgroups32",
  "capget", "capset", "prctl", "arch_prctl", "set_tid_address", "set_robust_list", "get_robust_list", "rseq",
  "futex", "futex_time64", "futex_waitv", "sched_yield", "sched_getaffinity", "sched_setaffinity",
  "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
  "sched_get_priority_min", "sched_rr_get_interval", "sched_getattr", "sched_setattr", "getpriority", "setpriority",
  "getrlimit", "setrlimit", "prlimit64", "ugetrlimit", "getrusage", "times", "uname", "sysinfo", "getrandom",
  "personality", "getcpu", "ioprio_get", "ioprio_set", "pidfd_open", "pidfd_send_signal", "pidfd_getfd",
  "process_mrelease", "restart_syscall", "set_thread_area", "get_thread_area", "modify_ldt",
];

const SIGNALS = [
  "kill", "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
  "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "signalfd", "signalfd4",
  "sigaction", "sigprocmask", "sigreturn", "sigsuspend", "pause", "alarm",
];

const TIME = [
  "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64", "clock_nanosleep", "clock_nanosleep_time64",
  "gettimeofday", "time", "nanosleep", "getitimer", "setitimer",
  "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime", "timer_gettime64", "timer_settime64",
  "timerfd_create", "timerfd_gettime", "timerfd_settime", "timerfd_gettime64", "timerfd_settime64",
];

const POLLING = [
  "poll", "ppoll", "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64",
  "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
];

const SOCKETS = [
  "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect", "shutdown",
  "getsockname", "getpeername", "getsockopt", "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
  "sendmmsg", "recvmmsg", "recvmmsg_time64", "socketcall", "send", "recv",
];

const IPC = [
  "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semtimedop_time64", "semctl",
  "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
  "mq_timedsend_time64", "mq_timedreceive_time64", "mq_notify", "mq_getsetattr", "ipc",
];

/** Calls that make sense only with a capability the container was granted. */
const BY_CAPABILITY: Record<string, string[]> = {
  CAP_SYS_ADMIN: ["mount", "umount", "umount2", "unshare", "setns", "pivot_root", "sethostname", "setdomainname",
    "quotactl", "fanotify_init", "lookup_dcookie", "perf_event_open", "bpf", "syslog",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "swapon", "swapoff"],
  CAP_SYS_CHROOT: ["chroot"],
  CAP_DAC_READ_SEARCH: ["open_by_handle_at"],
  CAP_SYS_PTRACE: ["ptrace", "process_vm_readv", "process_vm_writev", "kcmp"],
  CAP_SYS_TIME: ["settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex", "clock_adjtime", "clock_adjtime64"],
  CAP_SYS_MODULE: ["init_module", "finit_module", "delete_module"],
  CAP_SYS_BOOT: ["reboot", "kexec_load", "kexec_file_load"],
  CAP_SYS_PACCT: ["acct"],
  CAP_SYS_NICE: ["move_pages", "migrate_pages"],
  CAP_SYS_RAWIO: ["iopl", "ioperm"],
  CAP_SYS_TTY_CONFIG: ["vhangup"],
  CAP_SYSLOG: ["syslog"],
  CAP_BPF: ["bpf"],
  CAP_PERFMON: ["perf_event_open"],
};

/**
 * Skiff's RuntimeDefault profile for a container holding `capabilities` (CAP_-prefixed). With
 * CAP_SYS_ADMIN, clone may create namespaces too.
 */
export function runtimeDefaultProfile(capabilities: string[]): SeccompProfile {
  const held = new Set(capabilities);
  const extra = [...new Set(Object.entries(BY_CAPABILITY).flatMap(([cap, names]) => (held.has(cap) ? names : [])))];
  const syscalls: SyscallRule[] = [
    { names: [...FILES, ...MEMORY, ...PROCESSES, ...SIGNALS, ...TIME, ...POLLING, ...SOCKETS, ...IPC], action: "SCMP_ACT_ALLOW" },
    { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
  ];
  if (held.has("CAP_SYS_ADMIN")) {
    syscalls.push({ names: ["clone"], action: "SCMP_ACT_ALLOW" });
  } else {
    // clone's flags are its first argument on x86: no new namespaces without CAP_SYS_ADMIN.
    syscalls.push({ names: ["clone"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }] });
  }
  if (extra.length > 0) syscalls.push({ names: extra, action: "SCMP_ACT_ALLOW" });
  return {
    defaultAction: "SCMP_ACT_ERRNO",
    defaultErrnoRet: EPERM,
    architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    syscalls,
  };
}

/** A Localhost profile: the file must hold a JSON object with a string defaultAction. */
export function readLocalhostProfile(path: string): SeccompProfile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`cannot load seccomp profile ${JSON.stringify(path)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  let profile: unknown;
  try {
    profile = JSON.parse(text);
  } catch (err) {
    throw new Error(`seccomp profile ${JSON.stringify(path)} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof profile !== "object" || profile === null || typeof (profile as SeccompProfile).defaultAction !== "string") {
    throw new Error(`seccomp profile ${JSON.stringify(path)} must be an object with a defaultAction`);
  }
  return profile as SeccompProfile;
}
