/* pushd-shim: the resident part of a dyno's shim, a few hundred KB instead of a Python
 * interpreter per dyno.
 *
 * `python -m pushd.runtime.shim DIR` prepares the dyno (writable layer, cgroups, the sandbox,
 * its pasta) and then execs this program in the same process, so the sandbox's outer bwrap
 * and the pasta stay its children. From then on it:
 *   - reads the dyno's output pipe and appends each line to the app log, formatted and
 *     escaped exactly as pushd/logs.py `format_line` does (lines end at "\n" only; invalid
 *     UTF-8 becomes U+FFFD; control characters, C1 controls, line/paragraph separators and
 *     bidi controls are shown as \xNN or \uNNNN); a line longer than LINE_MAX bytes is cut
 *     (at a character boundary) so an endless line still reaches the log. Rotation as AppLog.
 *   - keeps the last TAIL_LINES lines in output.tail (written beside, renamed over);
 *   - on SIGTERM/SIGINT marks the dyno stopping, SIGTERMs every process of the sandbox
 *     (not bwrap's monitor nor its init), SIGKILLs them after the stop timeout;
 *   - once the main process (the outer bwrap) exits, gives what it left DRAIN_MS to finish
 *     its output, then kills the rest (the sandbox's init, the cgroup's members);
 *   - a web dyno, or one with add-ons: keeps the endpoint's listening socket, the dyno's
 *     network namespace and the add-ons' socket folders, and starts the forwarder
 *     (pushd-netfwd) again whenever it dies (at most once a second), recording it in
 *     forwarder.json: the port is never let go meanwhile;
 *   - reaps, stops the forwarder (or pasta), and execs the finisher (the argv after "--", with
 *     the exit status, whether a stop was begun, whether SIGKILL followed; see shim.py
 *     `finish`).
 * It writes no platform event lines; the finisher reports what happened.
 *
 * usage: pushd-shim DIR CHILD INIT INIT_START PASTA OUT_FD LOG LOG_MAX DYNO STOP_TIMEOUT
 *                   CGROUP FORWARDER -- FINISHER...
 * (INIT, PASTA 0 when unknown; PASTA: the forwarder's pid; CGROUP "" for none; FORWARDER
 * "LISTEN_FD,NETNS_FD,PORT,UID,REACH,BINARY", or "" for a dyno without a forwarder; LISTEN_FD
 * -1 without an endpoint; REACH as pushd-netfwd takes it, "" for none.)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 16384          /* a longer line is cut into pieces of at most this */
#define READ_CHUNK 16384
#define ESCAPED_MAX (LINE_MAX_BYTES * 6)  /* worst case: every byte a \u2028 or \xNN */
#define PREFIX_MAX 512
#define OUT_MAX (ESCAPED_MAX + PREFIX_MAX + 2)
#define TAIL_LINES 20
#define TAIL_WINDOW_MS 300000         /* the tail is kept current while a release may fail */
#define TAIL_EVERY_MS 250
#define DRAIN_MS 500                  /* sandbox.DRAIN_AFTER_EXIT */
#define PASTA_STOP_MS 2000            /* netns.STOP_TIMEOUT */
#define RESPAWN_MS 1000               /* the forwarder is started again at most this often */

static const char *dir, *log_path, *dyno, *cgroup;
static pid_t child, init_pid, pasta;
static unsigned long long init_start;
static long long log_max;

static unsigned char inbuf[LINE_MAX_BYTES + READ_CHUNK];
static size_t inlen;
static char out[OUT_MAX];
static size_t outlen;

static char *tail[TAIL_LINES];
static int tail_next, tail_count, tail_dirty;
static long long tail_written_ms = -TAIL_EVERY_MS, started_ms;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
    fprintf(stderr, "pushd-shim: %s: %s\n", what, strerror(errno));
    exit(111);
}

/* ---- formatting: the same bytes as logs.format_line("app", dyno, escape(decoded)) ---- */

static int unsafe(uint32_t cp)
{
    return cp <= 0x08 || (cp >= 0x0a && cp <= 0x1f) || (cp >= 0x7f && cp <= 0x9f)
        || cp == 0x2028 || cp == 0x2029 || cp == 0x200e || cp == 0x200f
        || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* The length of the valid UTF-8 sequence at s (1-4), or -(bytes of its maximal invalid
 * prefix) as Python's decoder replaces it with one U+FFFD; *cp gets the code point. */
static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char b = s[0], lo = 0x80, hi = 0xbf;
    int need;
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xc2 && b <= 0xdf) {
        need = 1;
        *cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
        need = 2;
        *cp = b & 0x0f;
        if (b == 0xe0)
            lo = 0xa0;
        else if (b == 0xed)
            hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        need = 3;
        *cp = b & 0x07;
        if (b == 0xf0)
            lo = 0x90;
        else if (b == 0xf4)
            hi = 0x8f;
    } else {
        return -1;
    }
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n || s[i] < lo || s[i] > hi)
            return -i;
        *cp = (*cp << 6) | (s[i] & 0x3f);
        lo = 0x80;
        hi = 0xbf;
    }
    return need + 1;
}

/* Escaped text of raw[0..n) into dst (at least 6 * n bytes); returns its length. */
static size_t escape_into(char *dst, const unsigned char *raw, size_t n)
{
    size_t o = 0, i = 0;
    while (n > 0 && raw[n - 1] == '\r')
        n--;
    while (i < n) {
        uint32_t cp;
        int len = utf8_next(raw + i, n - i, &cp);
        if (len < 0) {
            memcpy(dst + o, "\xef\xbf\xbd", 3);
            o += 3;
            i += (size_t)-len;
        } else if (unsafe(cp)) {
            o += (size_t)sprintf(dst + o, cp < 0x100 ? "\\x%02x" : "\\u%04x", (unsigned)cp);
            i += (size_t)len;
        } else {
            memcpy(dst + o, raw + i, (size_t)len);
            o += (size_t)len;
            i += (size_t)len;
        }
    }
    return o;
}

/* ---- the app log (logs.AppLog.write_lines) ---- */

/* On a full disk (or any failed write) lines are dropped and counted, never fatal: the dyno
 * keeps running and its pipe keeps being read. The first write that succeeds again starts
 * with `-- N lines dropped: <reason> --` (after a newline if a write stopped mid-line). */
static unsigned long long dropped;
static int torn;
static char dropped_reason[128];

static size_t lines_in(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += s[i] == '\n';
    return count;
}

static void drop(size_t written, int err)
{
    dropped += lines_in(out, outlen) - lines_in(out, written);
    if (written > 0 && out[written - 1] != '\n')
        torn = 1;
    snprintf(dropped_reason, sizeof dropped_reason, "%s", strerror(err));
}

/* Write all of buf; returns the bytes written (less than n on an error, errno set). */
static size_t write_all(int fd, const char *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, buf + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    return done;
}

static int write_marker(int fd)
{
    char marker[PREFIX_MAX + 256];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int len = snprintf(marker, sizeof marker,
                       "%s%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00 pushd[%s]: "
                       "-- %llu lines dropped: %s --\n", torn ? "\n" : "",
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                       tm.tm_sec, ts.tv_nsec / 1000, dyno, dropped, dropped_reason);
    if (len < 0 || len >= (int)sizeof marker)
        len = (int)sizeof marker - 1;
    size_t done = write_all(fd, marker, (size_t)len);
    if (done < (size_t)len) {
        if (done > 0)
            torn = 1;
        return 0;
    }
    dropped = 0;
    torn = 0;
    return 1;
}

static void log_flush(void)
{
    char parent[PATH_MAX];
    const char *slash = strrchr(log_path, '/');
    if (outlen == 0)
        return;
    if (slash && slash != log_path && (size_t)(slash - log_path) < sizeof parent) {
        /* never the parents: a late line about a destroyed app must not bring it back */
        memcpy(parent, log_path, (size_t)(slash - log_path));
        parent[slash - log_path] = '\0';
        mkdir(parent, 0700);
    }
    int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno != ENOENT)  /* the app is gone: nothing to count */
            drop(0, errno);
        outlen = 0;
        return;
    }
    if (dropped > 0 && !write_marker(fd)) {
        drop(0, errno ? errno : ENOSPC);  /* this batch waits behind the marker: dropped */
        close(fd);
        outlen = 0;
        return;
    }
    size_t done = write_all(fd, out, outlen);
    if (done < outlen)
        drop(done, errno);
    else {
        struct stat st, now;
        if (fstat(fd, &st) == 0 && st.st_size > log_max && flock(fd, LOCK_EX) == 0) {
            /* another writer may have rotated while we waited for the lock */
            if (stat(log_path, &now) == 0 && now.st_ino == st.st_ino) {
                char older[PATH_MAX];
                if (snprintf(older, sizeof older, "%s.1", log_path) < (int)sizeof older)
                    rename(log_path, older);
            }
            flock(fd, LOCK_UN);
        }
    }
    close(fd);
    outlen = 0;
}

static void tail_add(const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, text, len);
    copy[len] = '\0';
    free(tail[tail_next]);
    tail[tail_next] = copy;
    tail_next = (tail_next + 1) % TAIL_LINES;
    if (tail_count < TAIL_LINES)
        tail_count++;
    tail_dirty = 1;
}

static void tail_write(void)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    snprintf(path, sizeof path, "%s/output.tail", dir);
    snprintf(tmp, sizeof tmp, "%s/.output.tail.%d.tmp", dir, (int)getpid());
    FILE *fh = fopen(tmp, "we");
    if (!fh)
        return;
    fchmod(fileno(fh), 0600);
    for (int i = 0; i < tail_count; i++) {
        const char *line = tail[(tail_next - tail_count + i + TAIL_LINES) % TAIL_LINES];
        fputs(line, fh);
        fputc('\n', fh);
    }
    if (fclose(fh) == 0)
        rename(tmp, path);
    else
        unlink(tmp);
    tail_dirty = 0;
    tail_written_ms = now_ms();
}

static void emit(const unsigned char *raw, size_t n)
{
    char prefix[PREFIX_MAX];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int plen = snprintf(prefix, sizeof prefix, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00 app[%s]: ",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, ts.tv_nsec / 1000, dyno);
    if (plen < 0 || plen >= PREFIX_MAX)
        plen = 0;
    if (outlen + (size_t)plen + n * 6 + 1 > OUT_MAX)
        log_flush();
    memcpy(out + outlen, prefix, (size_t)plen);
    size_t text = outlen + (size_t)plen;
    size_t len = escape_into(out + text, raw, n);
    tail_add(out + text, len);
    outlen = text + len;
    out[outlen++] = '\n';
}

/* Where to cut a line that has no end yet: at most LINE_MAX_BYTES, never inside a
 * character (unless what is there is no UTF-8 at all). */
static size_t cut_at(const unsigned char *s)
{
    size_t cut = LINE_MAX_BYTES;
    for (int back = 0; back < 4 && cut > 0; back++, cut--)
        if ((s[cut] & 0xc0) != 0x80)
            return cut;
    return LINE_MAX_BYTES;
}

/* A line, in pieces of at most LINE_MAX_BYTES. */
static void emit_line(const unsigned char *s, size_t n)
{
    while (n > LINE_MAX_BYTES) {
        size_t cut = cut_at(s);
        emit(s, cut);
        s += cut;
        n -= cut;
    }
    emit(s, n);
}

/* The complete lines in inbuf go out; what is left waits for its end (or is cut, when it
 * grows past LINE_MAX_BYTES without one). */
static void emit_lines(int at_eof)
{
    size_t start = 0;
    for (size_t i = 0; i < inlen; i++) {
        if (inbuf[i] == '\n') {
            emit_line(inbuf + start, i - start);
            start = i + 1;
        }
    }
    while (inlen - start > LINE_MAX_BYTES) {
        size_t cut = cut_at(inbuf + start);
        emit(inbuf + start, cut);
        start += cut;
    }
    if (at_eof && start < inlen) {
        emit(inbuf + start, inlen - start);
        start = inlen;
    }
    memmove(inbuf, inbuf + start, inlen - start);
    inlen -= start;
    log_flush();
}

/* ---- processes ---- */

static unsigned long long start_of(pid_t pid, char *state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long start = 0;
    char st = 0;
    if (!p || sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
                     "%*d %*d %*d %llu", &st, &start) != 2)
        return 0;
    if (state)
        *state = st;
    return start;
}

struct proc { pid_t pid, ppid; };

static size_t proc_table(struct proc **table)
{
    size_t n = 0, cap = 256;
    struct proc *t = malloc(cap * sizeof *t);
    DIR *d = opendir("/proc");
    struct dirent *e;
    if (!t || !d) {
        free(t);
        if (d)
            closedir(d);
        *table = NULL;
        return 0;
    }
    while ((e = readdir(d))) {
        char path[sizeof e->d_name + 16], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t r = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (r <= 0)
            continue;
        buf[r] = '\0';
        char *p = strrchr(buf, ')');
        int ppid;
        if (!p || sscanf(p + 2, "%*c %d", &ppid) != 1)
            continue;
        if (n == cap) {
            struct proc *bigger = realloc(t, 2 * cap * sizeof *t);
            if (!bigger)
                break;
            t = bigger;
            cap *= 2;
        }
        t[n].pid = atoi(e->d_name);
        t[n].ppid = ppid;
        n++;
    }
    closedir(d);
    *table = t;
    return n;
}

/* dynodir.signal_sandbox: every process below the sandbox's init(s); the inits themselves
 * only for SIGKILL (which takes the whole pid namespace down). */
static void signal_sandbox(int sig)
{
    struct proc *t;
    size_t n = proc_table(&t);
    pid_t *todo = malloc((n + 1) * sizeof *todo);
    size_t ntodo = 0;
    if (!todo) {
        free(t);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (t[i].ppid == child) {
            if (sig == SIGKILL)
                kill(t[i].pid, sig);
            todo[ntodo++] = t[i].pid;
        }
    for (size_t head = 0; head < ntodo; head++)  /* breadth first below the inits */
        for (size_t i = 0; i < n && ntodo < n + 1; i++)
            if (t[i].ppid == todo[head] && t[i].pid != todo[head]) {
                todo[ntodo++] = t[i].pid;
                kill(t[i].pid, sig);
            }
    free(todo);
    free(t);
}

/* sandboxio.SandboxInfo.kill_all: the init (the same process still), the cgroup's members. */
static void kill_all(void)
{
    char state;
    if (init_pid > 0 && start_of(init_pid, &state) == init_start)
        kill(init_pid, SIGKILL);
    if (cgroup[0]) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/cgroup.procs", cgroup);
        FILE *fh = fopen(path, "re");
        int pid;
        if (fh) {
            while (fscanf(fh, "%d", &pid) == 1)
                kill(pid, SIGKILL);
            fclose(fh);
        }
    }
}

static int child_status = -1, pasta_reaped;

/* the endpoint's forwarder, started again when it dies */
static int fwd_listen = -1, fwd_netns = -1, fwd_wanted;
static char fwd_port[16], fwd_uid[16], *fwd_reach, *fwd_binary;
static long long fwd_started_ms;

/* the add-ons' socket folders named in REACH ("PORT:DIRFD:NAME;...") get `flags` */
static void reach_fds(int flags)
{
    for (const char *p = fwd_reach; p && *p; p = strchr(p, ';') ? strchr(p, ';') + 1 : "") {
        const char *colon = strchr(p, ':');
        if (colon)
            fcntl(atoi(colon + 1), F_SETFD, flags);
    }
}

static void parse_forwarder(char *arg)
{
    char *fields[6];
    for (int i = 0; i < 5; i++) {
        char *comma = strchr(arg, ',');
        if (!comma)
            return;
        *comma = '\0';
        fields[i] = arg;
        arg = comma + 1;
    }
    fields[5] = arg;
    fwd_listen = atoi(fields[0]);
    fwd_netns = atoi(fields[1]);
    snprintf(fwd_port, sizeof fwd_port, "%s", fields[2]);
    snprintf(fwd_uid, sizeof fwd_uid, "%s", fields[3]);
    fwd_reach = fields[4];
    fwd_binary = fields[5];
    if (fwd_listen >= 0)
        fcntl(fwd_listen, F_SETFD, FD_CLOEXEC);  /* not the finisher's */
    fcntl(fwd_netns, F_SETFD, FD_CLOEXEC);
    reach_fds(FD_CLOEXEC);
    fwd_started_ms = now_ms();
}

static void write_forwarder(void)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    snprintf(path, sizeof path, "%s/forwarder.json", dir);
    snprintf(tmp, sizeof tmp, "%s/.forwarder.json.%d.tmp", dir, (int)getpid());
    FILE *fh = fopen(tmp, "we");
    if (!fh)
        return;
    fchmod(fileno(fh), 0600);
    fprintf(fh, "{\"pid\": %d, \"start\": %llu}", (int)pasta, start_of(pasta, NULL));
    if (fclose(fh) == 0)
        rename(tmp, path);
    else
        unlink(tmp);
}

static void respawn_forwarder(void)
{
    char lfd[16], nfd[16];
    snprintf(lfd, sizeof lfd, "%d", fwd_listen);
    snprintf(nfd, sizeof nfd, "%d", fwd_netns);
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (fwd_listen >= 0)
            fcntl(fwd_listen, F_SETFD, 0);
        fcntl(fwd_netns, F_SETFD, 0);
        reach_fds(0);
        execl(fwd_binary, fwd_binary, lfd, nfd, fwd_port, fwd_uid, "1", fwd_reach,
              (char *)NULL);
        _exit(127);
    }
    fwd_started_ms = now_ms();
    if (pid > 0) {
        pasta = pid;
        pasta_reaped = 0;
        fwd_wanted = 0;
        write_forwarder();
    }
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == child)
            child_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        else if (pid == pasta) {
            pasta_reaped = 1;
            if (fwd_binary)
                fwd_wanted = 1;
        }
    }
}

static void stop_pasta(int sigfd)
{
    if (pasta <= 0 || pasta_reaped)
        return;
    kill(pasta, SIGTERM);
    long long deadline = now_ms() + PASTA_STOP_MS;
    while (!pasta_reaped) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            kill(pasta, SIGKILL);
            waitpid(pasta, NULL, 0);
            return;
        }
        struct pollfd p = {sigfd, POLLIN, 0};
        if (poll(&p, 1, (int)left) > 0) {
            struct signalfd_siginfo info;
            while (read(sigfd, &info, sizeof info) > 0)
                ;
        }
        reap();
    }
}

static void touch(const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
}

static int exists(const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* The finisher could not run: record the exit ourselves, so it is seen as one. */
static void write_exit(int status, int killed)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(path, sizeof path, "%s/exit.json", dir);
    snprintf(tmp, sizeof tmp, "%s/.exit.json.%d.tmp", dir, (int)getpid());
    FILE *fh = fopen(tmp, "we");
    if (!fh)
        return;
    fprintf(fh, "{\"error\": \"the finisher could not run\", \"finished_at\": %lld.%06ld, "
            "\"killed_after_timeout\": %s, \"oom\": false, \"status\": %d}",
            (long long)ts.tv_sec, ts.tv_nsec / 1000, killed ? "true" : "false", status);
    fflush(fh);
    fsync(fileno(fh));
    if (fclose(fh) == 0)
        rename(tmp, path);
}

int main(int argc, char **argv)
{
    if (argc < 15 || strcmp(argv[13], "--") != 0) {
        fprintf(stderr, "usage: pushd-shim DIR CHILD INIT INIT_START PASTA OUT_FD LOG LOG_MAX "
                "DYNO STOP_TIMEOUT CGROUP FORWARDER -- FINISHER...\n");
        return 2;
    }
    dir = argv[1];
    child = atoi(argv[2]);
    init_pid = atoi(argv[3]);
    init_start = strtoull(argv[4], NULL, 10);
    pasta = atoi(argv[5]);
    int out_fd = atoi(argv[6]);
    log_path = argv[7];
    log_max = atoll(argv[8]);
    dyno = argv[9];
    long long stop_timeout_ms = (long long)(atof(argv[10]) * 1000);
    cgroup = argv[11];
    if (argv[12][0])
        parse_forwarder(argv[12]);
    char **finisher = argv + 14;

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD);
    /* blocked already by the Python side before exec: nothing is lost in between */
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        die("sigprocmask");
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    int sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sigfd < 0)
        die("signalfd");
    fcntl(out_fd, F_SETFD, FD_CLOEXEC);
    fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) | O_NONBLOCK);
    started_ms = now_ms();

    int eof = 0, killed = 0, stopping = 0, term = exists("stopping");
    long long main_exited = -1, stop_deadline = -1;
    reap();
    for (;;) {
        if (term && !stopping) {
            stopping = 1;
            touch("stopping");
            signal_sandbox(SIGTERM);
            stop_deadline = now_ms() + stop_timeout_ms;
        }
        long long now = now_ms(), timeout = -1;
        if (stopping && !killed)
            timeout = stop_deadline > now ? stop_deadline - now : 0;
        if (!eof && child_status >= 0) {
            /* the main process is gone (the dyno ends with it): a moment for the last
             * output, then the rest of the sandbox goes */
            if (main_exited < 0)
                main_exited = now;
            if (now - main_exited >= DRAIN_MS)
                kill_all();
            timeout = timeout < 0 || timeout > 100 ? 100 : timeout;
        }
        if (eof)
            timeout = timeout < 0 || timeout > 200 ? 200 : timeout;
        if (fwd_wanted && !stopping && child_status < 0) {
            long long due = fwd_started_ms + RESPAWN_MS - now;
            if (due <= 0)
                respawn_forwarder();
            else if (timeout < 0 || timeout > due)
                timeout = due;
        }
        if (tail_dirty && now - started_ms < TAIL_WINDOW_MS) {
            long long due = tail_written_ms + TAIL_EVERY_MS - now;
            if (due <= 0) {
                tail_write();
            } else if (timeout < 0 || timeout > due) {
                timeout = due;
            }
        }
        struct pollfd fds[2] = {{sigfd, POLLIN, 0}, {eof ? -1 : out_fd, POLLIN, 0}};
        int ready = poll(fds, 2, (int)timeout);
        if (ready < 0 && errno != EINTR)
            die("poll");
        if (ready > 0 && (fds[0].revents & POLLIN)) {
            struct signalfd_siginfo info;
            while (read(sigfd, &info, sizeof info) == sizeof info)
                if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT)
                    term = 1;
            reap();
        }
        if (ready > 0 && fds[1].revents) {
            ssize_t n = read(out_fd, inbuf + inlen, READ_CHUNK);
            if (n > 0) {
                inlen += (size_t)n;
                emit_lines(0);
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                eof = 1;
            }
        }
        if (stopping && !killed && now_ms() >= stop_deadline) {
            signal_sandbox(SIGKILL);
            killed = 1;
        }
        if (eof && child_status < 0)
            reap();
        if (eof && child_status >= 0)
            break;
    }
    emit_lines(1);
    stop_pasta(sigfd);
    tail_write();
    close(out_fd);

    char status[16];
    snprintf(status, sizeof status, "%d", child_status);
    int n = 0;
    while (finisher[n])
        n++;
    char **args = calloc((size_t)n + 4, sizeof *args);
    if (args) {
        memcpy(args, finisher, (size_t)n * sizeof *args);
        args[n] = status;
        args[n + 1] = stopping ? "stopped" : "-";
        args[n + 2] = killed ? "killed" : "-";
        sigdelset(&mask, SIGCHLD);  /* SIGTERM stays blocked: the finisher runs to its end */
        sigprocmask(SIG_SETMASK, &mask, NULL);
        execv(args[0], args);
    }
    write_exit(child_status, killed);
    return 1;
}
