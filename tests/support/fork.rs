//! `fork()` children for tests of process-shared state: the child shares the parent's
//! mappings (as Kamailio's workers share what `mod_init` made), runs a closure and leaves with
//! `_exit(code)`, never returning into the test harness; it reports through its exit status
//! and pipes. Tests that fork take `support::serial()` so that no other test thread runs then.

use std::panic::AssertUnwindSafe;

/// Fork; the child runs `f` and leaves with `_exit(f())` (101 if `f` panicked).
pub fn fork_child(f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: fork has no memory-safety preconditions. The child only runs `f` (cache calls,
    // pipe writes, sleeps) and then `_exit`s without running the harness or atexit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: `_exit` terminates the child immediately; nothing after it runs.
        unsafe { libc::_exit(code) }
    }
    pid
}

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Exit(i32),
    Signal(i32),
}

/// Waits for our child `pid`.
pub fn wait_child(pid: libc::pid_t) -> End {
    let mut status = 0;
    // SAFETY: `status` is a valid out pointer; `pid` is our own child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
    if libc::WIFEXITED(status) {
        End::Exit(libc::WEXITSTATUS(status))
    } else {
        End::Signal(libc::WTERMSIG(status))
    }
}

/// The exit code of our child `pid`; panics if a signal ended it.
pub fn wait_exit(pid: libc::pid_t) -> i32 {
    match wait_child(pid) {
        End::Exit(code) => code,
        End::Signal(sig) => panic!("child {pid} killed by signal {sig}"),
    }
}

/// Whether the child is still running (not yet exited).
pub fn still_running(pid: libc::pid_t) -> bool {
    let mut status = 0;
    // SAFETY: as in `wait_child`; WNOHANG returns 0 while the child runs.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == 0 }
}

/// SIGKILL to our child `pid`.
pub fn kill(pid: libc::pid_t) {
    // SAFETY: sends SIGKILL to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "kill {pid}");
}

/// A pipe: (read end, write end).
pub fn pipe() -> (libc::c_int, libc::c_int) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

pub fn write_byte(fd: libc::c_int, b: u8) {
    // SAFETY: writes one byte from a valid buffer to a descriptor we own.
    unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
}

pub fn read_byte(fd: libc::c_int) -> Option<u8> {
    let mut b = 0u8;
    // SAFETY: reads at most one byte into a valid buffer from a descriptor we own.
    let n = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
    (n == 1).then_some(b)
}

pub fn close(fd: libc::c_int) {
    // SAFETY: closes a descriptor we own, once.
    unsafe { libc::close(fd) };
}
