/* DORA load generator: the hot loop of loadgen.py in C, so the generator is not
 * what limits the measurement. Templates (DISCOVER and REQUEST per location, with
 * options 53, 50, 54 of the REQUEST first) come from loadgen.py --write-templates.
 *
 *   loadgen TEMPLATES SERVER RATE SECONDS START   → one JSON line on stdout
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PKT 300
#define BATCH 64

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* message type (53) and server id (54) of a reply */
static int message(const uint8_t *d, int n, uint8_t *sid) {
    int i = 240, kind = 0;
    while (i + 1 < n) {
        uint8_t code = d[i];
        if (code == 255) break;
        if (code == 0) { i++; continue; }
        uint8_t size = d[i + 1];
        if (i + 2 + size > n) break;
        if (code == 53 && size >= 1) kind = d[i + 2];
        else if (code == 54 && size == 4) memcpy(sid, d + i + 2, 4);
        i += 2 + size;
    }
    return kind;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s TEMPLATES SERVER RATE SECONDS START\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 1; }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    uint8_t *tpl = malloc(size);
    if (fread(tpl, 1, size, f) != (size_t)size) { perror("read"); return 1; }
    fclose(f);
    long n = size / (2 * PKT);                 /* DISCOVER i at 2i, REQUEST i at 2i+1 */
    double rate = atof(argv[3]), seconds = atof(argv[4]);
    long start_index = atol(argv[5]), total = (long)(rate * seconds);

    int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int one = 1, buf = 8 << 20;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(67)};
    if (bind(s, (struct sockaddr *)&me, sizeof me) < 0) { perror("bind"); return 1; }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(67)};
    inet_pton(AF_INET, argv[2], &to.sin_addr);

    /* state per transaction: xid = base + sequence; +loc waiting for OFFER, -loc for ACK */
    long *state = calloc(total + 1, sizeof(long));
    uint32_t base = ((uint32_t)getpid() & 0xFF) << 24;
    long sent = 0, acks = 0, offers = 0, naks = 0, outstanding = 0;
    uint8_t pkt[PKT], rx[BATCH][1500];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    double t0 = now(), last_ack = t0, deadline = 0;
    for (;;) {
        double t = now();
        long due = (long)((t - t0) * rate) + 1;
        if (due > total) due = total;
        while (sent < due) {
            long i = (start_index + sent) % n;
            memcpy(pkt, tpl + 2 * i * PKT, PKT);
            uint32_t xid = htonl(base + (uint32_t)sent);
            memcpy(pkt + 4, &xid, 4);
            if (sendto(s, pkt, PKT, 0, (struct sockaddr *)&to, sizeof to) < 0) break;
            state[sent] = i + 1;
            sent++;
            outstanding++;
        }
        for (int k = 0; k < BATCH; k++) {
            iov[k].iov_base = rx[k];
            iov[k].iov_len = sizeof rx[k];
            memset(&msgs[k].msg_hdr, 0, sizeof msgs[k].msg_hdr);
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }
        int got = recvmmsg(s, msgs, BATCH, MSG_DONTWAIT, NULL);
        for (int k = 0; k < got; k++) {
            uint8_t *d = rx[k];
            int len = msgs[k].msg_len;
            if (len < 240) continue;
            uint32_t xid;
            memcpy(&xid, d + 4, 4);
            long seq = (long)(ntohl(xid) - base);
            if (seq < 0 || seq >= sent || state[seq] == 0) continue;
            uint8_t sid[4] = {0};
            int kind = message(d, len, sid);
            if (kind == 2 && state[seq] > 0) {            /* OFFER → REQUEST */
                offers++;
                memcpy(pkt, tpl + (2 * (state[seq] - 1) + 1) * PKT, PKT);
                memcpy(pkt + 4, &xid, 4);
                memcpy(pkt + 245, d + 16, 4);             /* option 50 = yiaddr */
                memcpy(pkt + 251, sid, 4);                /* option 54 = server id */
                sendto(s, pkt, PKT, 0, (struct sockaddr *)&to, sizeof to);  /* lost: a drop */
                state[seq] = -state[seq];
            } else if (kind == 5 && state[seq] < 0) {     /* ACK */
                acks++;
                outstanding--;
                last_ack = now();
                state[seq] = 0;
            } else if (kind == 6) {                       /* NAK */
                naks++;
                outstanding--;
                state[seq] = 0;
            }
        }
        if (sent >= total) {
            if (deadline == 0) deadline = now() + 1.0;
            if (outstanding == 0 || now() > deadline) break;
        }
        if (got <= 0) {
            struct pollfd p = {.fd = s, .events = POLLIN};
            poll(&p, 1, 0);
            struct timespec nap = {0, 100000};            /* 0.1 ms: pace without spinning */
            nanosleep(&nap, NULL);
        }
    }
    double elapsed = last_ack - t0;
    if (elapsed <= 0) elapsed = 1e-9;
    printf("{\"rate\": %.0f, \"sent\": %ld, \"offers\": %ld, \"acks\": %ld, \"naks\": %ld, "
           "\"drops\": %ld, \"drop_pct\": %.3f, \"seconds\": %.3f, \"leases_per_s\": %.1f}\n",
           rate, sent, offers, acks, naks, sent - acks,
           sent ? 100.0 * (sent - acks) / sent : 0.0, elapsed, acks / elapsed);
    return 0;
}
