/* pushd-netfwd: a web dyno's endpoint, a TCP port on the host's loopback, relayed to $PORT
 * inside the dyno's own network namespace. About 0.1 MB where pasta took 20-29 MB.
 *
 * The listening socket is bound on the host by pushd (so a taken port fails the start with
 * its reason, and the socket stays in the host's namespace) and inherited. This program then
 * joins the dyno's network namespace once (setns on the inherited namespace fd), drops to the
 * app's uid with no capabilities (no_new_privs), and relays: for each accepted connection it
 * connects to 127.0.0.1:PORT (then [::1]:PORT) in that namespace, where sockets it makes now
 * live, and copies bytes both ways through two 16 KB buffers (epoll, non-blocking, level
 * triggered). Half-close is passed on (EOF from one side: shutdown(SHUT_WR) of the other once
 * its buffer is written), TCP_NODELAY on both sockets, so an upgrade (websockets), a long
 * response or a slow client all work as on a direct connection. An upstream that refuses
 * (nothing listens yet) closes the client's connection: nginx answers 502.
 *
 * Reach mode, the other way: the app's add-ons at 127.0.0.1:PORT inside the namespace. For
 * each "PORT:DIRFD:NAME" of REACH (';' between them) it listens on 127.0.0.1:PORT in the
 * namespace and relays each connection to the add-on server's unix socket NAME in the folder
 * DIRFD (an O_PATH descriptor pushd opened, reached as /proc/self/fd/DIRFD/NAME: as the app's
 * uid only that folder's search bit counts, never the state dir's). A unix socket belongs to
 * no network namespace: the dyno reaches its add-ons with no way to the host's loopback.
 *
 * usage: pushd-netfwd LISTEN_FD NETNS_FD PORT UID DIE_WITH_PARENT(0|1) [REACH]
 * (LISTEN_FD -1: no endpoint, reach only)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define BUF 16384
#define EVENTS 64
#define REACH_MAX 32

struct conn;
struct side {               /* one socket of a relayed connection */
    struct conn *conn;
    int fd, which;
    char buf[BUF];          /* bytes read from this socket, for the other one */
    size_t len, off;
    int eof, shut, hup;
};
struct target {             /* where a listener's connections go */
    int port;               /* 127.0.0.1:port (then [::1]) in the namespace, or */
    char path[108];         /* an add-on's unix socket (reach mode) */
};
struct listener {           /* epoll's data.ptr for it: the listener itself */
    int fd, paused;
    struct target to;
};
struct conn {
    struct side s[2];       /* 0: the client (nginx, or the app), 1: the dyno (or add-on) */
    const struct target *to;
    int connecting, v6_tried, dead;
    struct conn *next_dead; /* freed once the events of this round are handled */
};

static int ep, nlisteners;
static struct conn *dead;
static struct listener listeners[REACH_MAX + 1];

static void die(const char *what)
{
    fprintf(stderr, "pushd-netfwd: %s: %s\n", what, strerror(errno));
    exit(111);
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void watch(struct side *s, int op)
{
    struct conn *c = s->conn;
    struct side *peer = &c->s[1 - s->which];
    struct epoll_event ev = {0, {.ptr = s}};
    if (s->which == 1 && c->connecting)
        ev.events = EPOLLOUT;
    else {
        if (!s->eof && s->len < BUF && !(s->which == 0 && c->connecting))
            ev.events |= EPOLLIN;
        if (peer->len > peer->off)
            ev.events |= EPOLLOUT;
    }
    if (s->hup)
        return;
    epoll_ctl(ep, op, s->fd, &ev);
}

static struct listener *listener_of(void *ptr)
{
    for (int i = 0; i < nlisteners; i++)
        if (ptr == (void *)&listeners[i])
            return &listeners[i];
    return NULL;
}

static void resume(void)
{
    for (int i = 0; i < nlisteners; i++)
        if (listeners[i].paused) {
            struct epoll_event ev = {EPOLLIN, {.ptr = &listeners[i]}};
            epoll_ctl(ep, EPOLL_CTL_MOD, listeners[i].fd, &ev);
            listeners[i].paused = 0;
        }
}

static void finish(struct conn *c)
{
    for (int i = 0; i < 2; i++)
        if (c->s[i].fd >= 0)
            close(c->s[i].fd);  /* leaves the epoll set with it */
    c->dead = 1;
    c->next_dead = dead;
    dead = c;
    resume();
}

static int upstream(struct conn *c, int v6)
{
    int port = c->to->port;
    if (c->to->path[0]) {  /* an add-on's unix socket */
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        memcpy(a.sun_path, c->to->path, sizeof a.sun_path);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
            close(fd);
            return -1;
        }
        c->s[1].fd = fd;
        c->connecting = 1;
        return 0;
    }
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    nodelay(fd);
    int r;
    if (v6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port),
                                 .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        r = connect(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        r = connect(fd, (struct sockaddr *)&a, sizeof a);
    }
    if (r < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->s[1].fd = fd;
    c->connecting = 1;
    return 0;
}

static void accept_all(struct listener *l)
{
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                struct epoll_event ev = {0, {.ptr = l}};  /* until one closes */
                epoll_ctl(ep, EPOLL_CTL_MOD, l->fd, &ev);
                l->paused = 1;
            }
            return;
        }
        nodelay(fd);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        for (int i = 0; i < 2; i++) {
            c->s[i].conn = c;
            c->s[i].which = i;
        }
        c->s[0].fd = fd;
        c->to = &l->to;
        c->v6_tried = l->to.path[0] != 0;  /* a unix socket has no second try */
        if (upstream(c, 0) < 0 && (c->v6_tried || (c->v6_tried = 1, upstream(c, 1) < 0))) {
            close(fd);
            free(c);
            continue;
        }
        watch(&c->s[0], EPOLL_CTL_ADD);
        watch(&c->s[1], EPOLL_CTL_ADD);
    }
}

/* The dyno's side finished (or failed) its connect. */
static int connected(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->s[1].fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0) {
        c->connecting = 0;
        return 0;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->s[1].fd, NULL);
    close(c->s[1].fd);
    if (!c->v6_tried) {  /* nothing on 127.0.0.1: an app listening on ::1 only */
        c->v6_tried = 1;
        if (upstream(c, 1) == 0) {
            watch(&c->s[1], EPOLL_CTL_ADD);
            return 0;
        }
    }
    c->s[1].fd = -1;
    return -1;
}

/* Move what can be moved; -1 when the connection is over. */
static int pump(struct conn *c)
{
    for (int i = 0; i < 2; i++) {
        struct side *from = &c->s[i], *to = &c->s[1 - i];
        while (from->len > from->off) {
            ssize_t n = send(to->fd, from->buf + from->off, from->len - from->off,
                             MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                return -1;
            }
            from->off += (size_t)n;
        }
        if (from->off == from->len)
            from->off = from->len = 0;
        if (from->eof && from->len == 0 && !from->shut) {
            shutdown(to->fd, SHUT_WR);
            from->shut = 1;
        }
    }
    if (c->s[0].shut && c->s[1].shut)
        return -1;
    for (int i = 0; i < 2; i++)  /* a side that hung up reads nothing more: its peer's
                                    bytes have nowhere to go once its own are written */
        if (c->s[i].hup && c->s[i].shut)
            return -1;
    return 0;
}

static int readable(struct side *s)
{
    while (!s->eof && s->len < BUF) {
        ssize_t n = recv(s->fd, s->buf + s->len, BUF - s->len, 0);
        if (n > 0)
            s->len += (size_t)n;
        else if (n == 0)
            s->eof = 1;
        else if (errno == EAGAIN || errno == EINTR)
            break;
        else
            return -1;
    }
    return 0;
}

static void event(struct side *s, unsigned events)
{
    struct conn *c = s->conn;
    if (c->dead)
        return;
    if (c->connecting && s->which == 0) {  /* the client left before the dyno answered */
        if (events & (EPOLLERR | EPOLLHUP))
            finish(c);
        return;
    }
    if (s->which == 1 && c->connecting) {
        if (connected(c) < 0) {
            finish(c);
            return;
        }
        if (c->connecting)
            return;  /* the ::1 attempt is under way */
        watch(&c->s[0], EPOLL_CTL_MOD);
        watch(&c->s[1], EPOLL_CTL_MOD);
        return;
    }
    if (events & EPOLLERR) {
        finish(c);
        return;
    }
    if ((events & (EPOLLIN | EPOLLHUP)) && readable(s) < 0) {
        finish(c);
        return;
    }
    if ((events & EPOLLHUP) && s->eof && !s->hup) {
        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);  /* it would be reported forever */
        s->hup = 1;
    }
    if (pump(c) < 0) {
        finish(c);
        return;
    }
    watch(&c->s[0], EPOLL_CTL_MOD);
    watch(&c->s[1], EPOLL_CTL_MOD);
}

/* A listener on 127.0.0.1:PORT of the namespace for each "PORT:DIRFD:NAME" of `spec`. */
static void reach(char *spec)
{
    for (char *save = NULL, *item = strtok_r(spec, ";", &save); item;
         item = strtok_r(NULL, ";", &save)) {
        char *dirfd = strchr(item, ':'), *name = dirfd ? strchr(dirfd + 1, ':') : NULL;
        if (!name || nlisteners > REACH_MAX)
            continue;
        *dirfd++ = '\0';
        *name++ = '\0';
        struct listener *l = &listeners[nlisteners];
        memset(l, 0, sizeof *l);
        l->to.port = atoi(item);
        fcntl(atoi(dirfd), F_SETFD, FD_CLOEXEC);
        if (snprintf(l->to.path, sizeof l->to.path, "/proc/self/fd/%d/%s", atoi(dirfd), name)
                >= (int)sizeof l->to.path || strchr(name, '/'))
            continue;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(l->to.port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (fd < 0)
            die("socket");
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1024) < 0) {
            fprintf(stderr, "pushd-netfwd: 127.0.0.1:%d: %s\n", l->to.port, strerror(errno));
            close(fd);
            continue;
        }
        l->fd = fd;
        nlisteners++;
    }
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: pushd-netfwd LISTEN_FD NETNS_FD PORT UID DIE_WITH_PARENT "
                "[REACH]\n");
        return 2;
    }
    int listen_fd = atoi(argv[1]);
    int netns = atoi(argv[2]);
    uid_t uid = (uid_t)strtoul(argv[4], NULL, 10);
    pid_t parent = getppid();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    /* into the dyno's network for good (the endpoint's listening socket stays the host's),
     * the add-ons' listeners made there, then the app's uid, with nothing left to gain */
    if (setns(netns, CLONE_NEWNET) < 0)
        die("setns");
    close(netns);
    if (listen_fd >= 0) {
        listeners[0].fd = listen_fd;
        listeners[0].to.port = atoi(argv[3]);
        nlisteners = 1;
        fcntl(listen_fd, F_SETFD, FD_CLOEXEC);
    }
    if (argc == 7)
        reach(argv[6]);
    if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
        die("dropping to the app's uid");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        die("no_new_privs");
    /* after the uid change, which clears it; a parent gone already is seen as well */
    if (atoi(argv[5]) && (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent))
        return 1;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    for (int i = 0; i < nlisteners; i++) {
        struct listener *l = &listeners[i];
        fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK);
        if (!l->to.path[0])
            nodelay(l->fd);  /* accepted connections inherit it */
        struct epoll_event lev = {EPOLLIN, {.ptr = l}};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, l->fd, &lev) < 0)
            die("epoll_ctl");
    }
    struct epoll_event events[EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct listener *l = listener_of(events[i].data.ptr);
            if (l)
                accept_all(l);
        }
        for (int i = 0; i < n; i++)
            if (!listener_of(events[i].data.ptr))
                event(events[i].data.ptr, events[i].events);
        while (dead) {
            struct conn *c = dead;
            dead = c->next_dead;
            free(c);
        }
    }
}
