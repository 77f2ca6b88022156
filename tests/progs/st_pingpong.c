/* State-threads' read-then-wait, for the audit's EAGAIN hint
 * (tests/e2e/syscalls_st.sh). Two coroutines of Debian's libst play
 * ping-pong over a Unix stream socket pair: ROUNDS messages of MSG bytes
 * each way. st_read first tries read(2) on its non-blocking descriptor and
 * waits for readiness only when that returns EAGAIN, which it does here
 * almost every time (the peer has not written yet): the EAGAIN share of
 * the read calls made from st_read is about half, by design.
 *
 * Prints "reads=N bytes=N" (the successful st_read calls and their bytes)
 * and exits 0. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <st.h>

#define ROUNDS 500
#define MSG 100

struct player {
    st_netfd_t fd;
    int serves; /* writes before its first read */
    long reads, bytes;
};

static int play(struct player *p)
{
    char buf[MSG];
    memset(buf, 'p', sizeof buf);
    for (int i = 0; i < ROUNDS; i++) {
        if (p->serves && st_write(p->fd, buf, sizeof buf, ST_UTIME_NO_TIMEOUT) != MSG)
            return -1;
        ssize_t n = st_read(p->fd, buf, sizeof buf, ST_UTIME_NO_TIMEOUT);
        if (n != MSG)
            return -1;
        p->reads++;
        p->bytes += n;
        if (!p->serves && st_write(p->fd, buf, sizeof buf, ST_UTIME_NO_TIMEOUT) != MSG)
            return -1;
    }
    return 0;
}

static void *player_main(void *arg)
{
    return play(arg) == 0 ? arg : NULL;
}

int main(void)
{
    int sv[2];
    if (st_set_eventsys(ST_EVENTSYS_ALT) != 0 || st_init() != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("st_pingpong: set-up");
        return 1;
    }
    struct player a = {.fd = st_netfd_open_socket(sv[0]), .serves = 1};
    struct player b = {.fd = st_netfd_open_socket(sv[1]), .serves = 0};
    if (!a.fd || !b.fd) {
        perror("st_pingpong: st_netfd_open_socket");
        return 1;
    }
    st_thread_t ta = st_thread_create(player_main, &a, 1, 0);
    st_thread_t tb = st_thread_create(player_main, &b, 1, 0);
    void *ra = NULL, *rb = NULL;
    if (!ta || !tb || st_thread_join(ta, &ra) != 0 || st_thread_join(tb, &rb) != 0 || !ra || !rb) {
        fprintf(stderr, "st_pingpong: a player failed\n");
        return 1;
    }
    printf("reads=%ld bytes=%ld\n", a.reads + b.reads, a.bytes + b.bytes);
    return 0;
}
