/*
 * proc.c: the hygiene of the command-line tool's process (cli.lua calls these; the library
 * never does: a host program's signals, limits and dumpability are its own business).
 *
 * core.guard_signals() -> true
 *   Installs one handler for SIGINT, SIGTERM, SIGHUP and SIGPIPE (a signal already ignored,
 *   as under nohup, stays ignored). Until core.defer_signals(true) the handler ends the
 *   process as the signal's default action would (and the standalone interpreter's
 *   "interrupted!" hook is gone); afterwards it only records INT/TERM/HUP, and returns
 *   from SIGPIPE so that the write fails with EPIPE. No SA_RESTART: a blocking read or
 *   write fails with EINTR, and libcurl's poll loop carries on after EINTR, so a request
 *   in progress still completes (within its timeout).
 * core.defer_signals(on) -> whether the handler is installed (guard_signals was called;
 *   without it, nothing changes)
 * core.pending_signal() -> signo, "SIGINT" | "SIGTERM" | "SIGHUP"; or nil: the first
 *   signal recorded while deferred
 * core.no_core_dumps() -> true, or nil, message: RLIMIT_CORE 0 (soft and hard) and, on
 *   Linux, PR_SET_DUMPABLE 0 (no core, no ptrace or /proc/PID/mem by other processes of
 *   the same user)
 * core.read_tty_secret(prompt, max) -> the line typed (without its newline), read with the
 *   terminal's echo off; false when standard input is not a terminal (nothing read); nil,
 *   message on a read error or a signal. The prompt goes to standard error. The echo comes
 *   back before it returns, and also when a signal ends the process while it waits (the
 *   handler restores the saved terminal settings first: tcsetattr is async-signal-safe).
 *   Reads at most max bytes (a longer line: nil, "too long"); the bytes read are wiped.
 * core.exec_input(command, input, seconds) -> true; or nil, message
 *   Runs /bin/sh -c command with input on its standard input (a pipe), its standard output
 *   sent to this process's standard error (so that the tool's own output stays one stream),
 *   in a process group of its own, with no descriptor of this process but 0 to 2 and an
 *   environment without the tool's secret variables (CPANEL_TOKEN, CPANEL_PASSWORD,
 *   CPANEL_OTP, WHM_TOKEN). Success: it exits 0 having read all of input. It is stopped
 *   (SIGTERM to its group, then SIGKILL) after seconds, or when INT, TERM or HUP arrives
 *   while it runs (deferred signals); the message says why it failed. input must fit a
 *   pipe's buffer (64 KiB on Linux; a token file is well under 4 KiB).
 * core.peer_certificate(url, seconds) -> { subject, issuer, names }; or nil, message
 *   The leaf certificate an https server presents, read without verifying it and without
 *   sending a request (for the tool's advice after a verification failure); names is the
 *   subject alternative name list as OpenSSL prints it ("DNS:a, IP Address:..."), or nil.
 * core.isatty(fd) -> whether descriptor fd (0, 1 or 2) is a terminal
 * core.file_mode(path) -> permission bits (e.g. 420 for 0644), "file" | "directory" |
 *   "other"; or nil, message (stat(2): a link is followed, as opening it would)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

extern char **environ;

#include "cptokens.h"

static const int guarded[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
#define NGUARDED (sizeof guarded / sizeof guarded[0])

static volatile sig_atomic_t installed = 0;
static volatile sig_atomic_t deferred = 0;
static volatile sig_atomic_t pending = 0;
static volatile sig_atomic_t echo_off = 0; /* the terminal's echo is off: restore it */
static struct termios saved_tty;

/* Async-signal-safe: flags, sigaction and raise only; errno kept. */
static void on_signal(int signo) {
  int saved = errno;
  if (echo_off && signo != SIGPIPE) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    echo_off = 0;
  }
  if (!deferred) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(signo, &dfl, NULL);
    raise(signo); /* blocked while we run: delivered, with its default action, on return */
  } else if (signo != SIGPIPE && pending == 0) {
    pending = signo;
  }
  errno = saved;
}

static int l_guard_signals(lua_State *L) {
  size_t i;
  if (!installed) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < NGUARDED; i++) sigaddset(&sa.sa_mask, guarded[i]);
    sa.sa_flags = 0;
    for (i = 0; i < NGUARDED; i++) {
      if (sigaction(guarded[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
      sigaction(guarded[i], &sa, NULL);
    }
    installed = 1;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_defer_signals(lua_State *L) {
  if (installed) deferred = lua_toboolean(L, 1) ? 1 : 0; /* (a host's own handlers: untouched) */
  lua_pushboolean(L, installed);
  return 1;
}

static int l_pending_signal(lua_State *L) {
  int s = pending;
  if (s == 0) return 0;
  lua_pushinteger(L, s);
  lua_pushstring(L, s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : s == SIGHUP ? "SIGHUP"
                                                                               : "a signal");
  return 2;
}

static int fail(lua_State *L, const char *what, int e) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, strerror(e));
  return 2;
}

static int l_no_core_dumps(lua_State *L) {
  struct rlimit rl;
  rl.rlim_cur = 0;
  rl.rlim_max = 0;
  if (setrlimit(RLIMIT_CORE, &rl) != 0) return fail(L, "setrlimit(RLIMIT_CORE)", errno);
#if defined(__linux__)
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return fail(L, "prctl(PR_SET_DUMPABLE)", errno);
#endif
  lua_pushboolean(L, 1);
  return 1;
}

static void put_err(const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w, n -= (size_t)w;
  }
}

/* One line from standard input, byte by byte (nothing read past the newline). */
static int read_line(cpt_buf_t *b, size_t max, const char **why) {
  char c;
  for (;;) {
    ssize_t r = read(STDIN_FILENO, &c, 1);
    if (r < 0) {
      *why = errno == EINTR ? "interrupted" : strerror(errno);
      return -1;
    }
    if (r == 0 || c == '\n') return 0;
    if (b->len >= max) {
      *why = "too long";
      return -1;
    }
    if (cpt_buf_add(b, &c, 1) != 0) {
      *why = "out of memory";
      return -1;
    }
  }
}

static int l_read_tty_secret(lua_State *L) {
  size_t plen;
  const char *prompt = luaL_checklstring(L, 1, &plen);
  size_t max = (size_t)luaL_checkinteger(L, 2);
  struct termios quiet;
  cpt_buf_t b;
  const char *why = NULL;
  int rc;
  if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tty) != 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  memset(&b, 0, sizeof b);
  quiet = saved_tty;
  quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
  quiet.c_lflag |= ICANON;
  put_err(prompt, plen);
  echo_off = 1;
  if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) {
    echo_off = 0;
    return fail(L, "cannot turn the terminal's echo off", errno);
  }
  rc = read_line(&b, max, &why);
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
  echo_off = 0;
  put_err("\n", 1); /* the newline the user typed was not echoed */
  if (rc != 0) {
    cpt_buf_free(&b);
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
  }
  lua_pushlstring(L, b.p ? b.p : "", b.len);
  cpt_buf_free(&b);
  return 1;
}

static int l_file_mode(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  struct stat st;
  if (strlen(path) != len) return luaL_argerror(L, 1, "a path without NUL bytes");
  if (stat(path, &st) != 0) return fail(L, "cannot stat", errno);
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" : "other");
  return 2;
}

/* ---- core.exec_input ------------------------------------------------------------------ */

static const char *const scrubbed[] = {"CPANEL_TOKEN=", "CPANEL_PASSWORD=", "CPANEL_OTP=",
                                       "WHM_TOKEN=", NULL};

/* environ without the secret variables: a new array of the same strings (NULL: no memory). */
static char **child_environ(void) {
  size_t n = 0, k = 0, i, j;
  char **env;
  while (environ && environ[n]) n++;
  env = malloc((n + 1) * sizeof *env);
  if (!env) return NULL;
  for (i = 0; i < n; i++) {
    int secret = 0;
    for (j = 0; scrubbed[j]; j++) {
      if (strncmp(environ[i], scrubbed[j], strlen(scrubbed[j])) == 0) secret = 1;
    }
    if (!secret) env[k++] = environ[i];
  }
  env[k] = NULL;
  return env;
}

/* In the child, before exec: async-signal-safe calls only (the parent may have threads). */
static void close_from(int lowfd) {
#if defined(SYS_close_range)
  if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0) return;
#endif
  {
    struct rlimit rl;
    long max = 1024, fd;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) max = (long)rl.rlim_cur;
    if (max > 65536) max = 65536;
    for (fd = lowfd; fd < max; fd++) close((int)fd);
  }
}

static void child(int in, const char *cmd, char **env) {
  sigset_t none;
  const char *argv[4];
  size_t i;
  setpgid(0, 0);
  for (i = 0; i < NGUARDED; i++) signal(guarded[i], SIG_DFL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (dup2(in, STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) _exit(126);
  close_from(3);
  argv[0] = "sh", argv[1] = "-c", argv[2] = cmd, argv[3] = NULL;
  execve("/bin/sh", (char *const *)argv, env);
  _exit(127);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes all of input into the pipe without blocking; SIGPIPE held and then swallowed. */
static int feed(int fd, const char *p, size_t n) {
  sigset_t pipe_set, old;
  int rc = 0;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigprocmask(SIG_BLOCK, &pipe_set, &old);
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      rc = w < 0 ? errno : EAGAIN;
      break;
    }
    p += w, n -= (size_t)w;
  }
  if (rc == EPIPE) {
    struct timespec zero = {0, 0};
    sigtimedwait(&pipe_set, NULL, &zero);
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  return rc;
}

/* Waits for pid until deadline (or a deferred signal); stops its group if it must. */
static int reap(pid_t pid, double deadline, int *status, const char **why) {
  const struct timespec tick = {0, 5 * 1000 * 1000};
  int sent = 0;
  double kill_at = 0;
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return sent ? -1 : 0;
    if (r < 0 && errno != EINTR) {
      *why = "lost track of it";
      return -1;
    }
    if (!sent && (now_s() >= deadline || pending)) {
      *why = pending ? "interrupted by a signal: it was stopped" : "timeout";
      kill(-pid, SIGTERM);
      sent = 1;
      kill_at = now_s() + 2;
    } else if (sent == 1 && now_s() >= kill_at) {
      kill(-pid, SIGKILL);
      sent = 2;
    }
    nanosleep(&tick, NULL);
  }
}

static int l_exec_input(lua_State *L) {
  size_t clen, ilen;
  const char *cmd = luaL_checklstring(L, 1, &clen);
  const char *input = luaL_checklstring(L, 2, &ilen);
  double seconds = luaL_checknumber(L, 3);
  int fds[2], status = 0, werr, unread = 0, rc;
  const char *why = NULL;
  char **env;
  pid_t pid;
  if (strlen(cmd) != clen) return luaL_argerror(L, 1, "a command without NUL bytes");
  env = child_environ();
  if (!env) return fail(L, "cannot start it", ENOMEM);
  if (pipe(fds) != 0) {
    free(env);
    return fail(L, "cannot start it: pipe", errno);
  }
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
  pid = fork();
  if (pid < 0) {
    int e = errno;
    close(fds[0]), close(fds[1]), free(env);
    return fail(L, "cannot start it: fork", e);
  }
  if (pid == 0) child(fds[0], cmd, env);
  free(env);
  setpgid(pid, pid); /* (also in the child: whichever runs first) */
  /* the input, then end of file; the read end stays open here, so what the command left
     unread can be counted once it has exited (and writing never fails with EPIPE) */
  werr = feed(fds[1], input, ilen);
  close(fds[1]);
  rc = reap(pid, now_s() + seconds, &status, &why);
  if (ioctl(fds[0], FIONREAD, &unread) != 0) unread = 0;
  close(fds[0]);
  lua_pushnil(L);
  if (rc != 0 && why && strcmp(why, "timeout") == 0) {
    lua_pushfstring(L, "it did not finish within %d s and was stopped", (int)seconds);
  } else if (rc != 0) {
    lua_pushstring(L, why);
  } else if (WIFSIGNALED(status)) {
    lua_pushfstring(L, "it was killed by signal %d", WTERMSIG(status));
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    lua_pushstring(L, "it exited with status 127 (command not found?)");
  } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    lua_pushfstring(L, "it exited with status %d", WEXITSTATUS(status));
  } else if (werr != 0 && werr != EPIPE) {
    lua_pushfstring(L, "cannot write to it: %s", strerror(werr));
  } else if (unread > 0) {
    lua_pushstring(L, "it exited 0 without reading the token from its standard input");
  } else {
    lua_pushboolean(L, 1);
    return 1;
  }
  return 2;
}

static void set_line(lua_State *L, const char *text, const char *key, const char *field) {
  const char *p = strstr(text, key);
  size_t n;
  if (!p) return;
  p += strlen(key);
  n = strcspn(p, "\n");
  while (n > 0 && p[0] == ' ') p++, n--;
  lua_pushlstring(L, p, n);
  lua_setfield(L, -2, field);
}

static int l_peer_certificate(lua_State *L) {
  size_t ulen;
  const char *url = luaL_checklstring(L, 1, &ulen);
  double seconds = luaL_checknumber(L, 2);
  cpt_buf_t b;
  char err[256];
  if (strlen(url) != ulen) return luaL_argerror(L, 1, "a URL without NUL bytes");
  memset(&b, 0, sizeof b);
  if (cpt_curl_peer_cert(url, (long)(seconds * 1000), &b, err, sizeof err) != 0 ||
      cpt_buf_add(&b, "", 1) != 0) {
    cpt_buf_free(&b);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_newtable(L);
  set_line(L, b.p, "Subject:", "subject");
  set_line(L, b.p, "Issuer:", "issuer");
  set_line(L, b.p, "X509v3 Subject Alternative Name:", "names");
  cpt_buf_free(&b);
  return 1;
}

static int l_isatty(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  lua_pushboolean(L, fd >= 0 && fd <= 2 && isatty((int)fd));
  return 1;
}

void cpt_proc_open(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"guard_signals", l_guard_signals}, {"defer_signals", l_defer_signals},
      {"pending_signal", l_pending_signal}, {"no_core_dumps", l_no_core_dumps},
      {"read_tty_secret", l_read_tty_secret}, {"file_mode", l_file_mode},
      {"exec_input", l_exec_input}, {"peer_certificate", l_peer_certificate},
      {"isatty", l_isatty}, {NULL, NULL}};
  cpt_setfuncs(L, fns);
}
