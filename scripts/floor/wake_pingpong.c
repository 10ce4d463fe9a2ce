// Sleeping hand-offs (issue 23): two processes pinned to CPUs 0 and 1 ping-
// pong a 64-byte message, each side sleeping in the kernel until the other
// wakes it, with one primitive at a time:
//
//   futex        FUTEX_WAIT on a sequence word, FUTEX_WAKE after each bump
//   futex-spin   the same, but the waiter spins SPIN_NS before it sleeps
//   futex-timed  FUTEX_WAIT with a 200 ms timeout (an hrtimer per sleep)
//   unix         a Unix stream socket pair, blocking read and write
//   eventfd      two eventfds, blocking read, write to wake
//   pipe         two pipes, blocking read and write
//
//   wake_pingpong KIND [ROUND_TRIPS=20000] [SPIN_NS=2000]
//
// Prints the p50 and p99 round trip (one clock read per round trip).
#define _GNU_SOURCE
#include <linux/futex.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + t.tv_nsec;
}
static void pin(int cpu) {
  cpu_set_t s; CPU_ZERO(&s); CPU_SET(cpu, &s);
  if (sched_setaffinity(0, sizeof s, &s)) { perror("sched_setaffinity"); exit(1); }
}
static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}
static void full(ssize_t r, size_t want, const char *what) {
  if (r != (ssize_t)want) { perror(what); exit(1); }
}

struct shared { _Alignas(128) uint32_t seq[2]; _Alignas(128) char data[2][128]; };
static struct shared *sh;
static int kind; // 0 futex, 1 futex-spin, 2 unix, 3 eventfd, 4 pipe, 5 futex-timed
static long spin_ns = 2000;
static int fds[2][2];  // [direction][read end, write end] (unix: [side] socket)
static char buf[64];

static void post(int dir, uint32_t v) {
  memcpy(sh->data[dir], buf, 64);
  __atomic_store_n(&sh->seq[dir], v, __ATOMIC_RELEASE);
  syscall(SYS_futex, &sh->seq[dir], FUTEX_WAKE, 1, 0, 0, 0);
}
static void await(int dir, uint32_t v) {
  if (kind == 1) {
    uint64_t until = now_ns() + spin_ns;
    while (__atomic_load_n(&sh->seq[dir], __ATOMIC_ACQUIRE) != v && now_ns() < until) __builtin_ia32_pause();
  }
  uint32_t seen;
  struct timespec slice = {0, 200000000};
  while ((seen = __atomic_load_n(&sh->seq[dir], __ATOMIC_ACQUIRE)) != v)
    syscall(SYS_futex, &sh->seq[dir], FUTEX_WAIT, seen, kind == 5 ? &slice : 0, 0, 0);
  memcpy(buf, sh->data[dir], 64);
}
// side 0 is the client; direction 0 client to server.
static void send_msg(int side, uint32_t v) {
  int dir = side;
  uint64_t one = 1;
  switch (kind) {
    case 0: case 1: case 5: post(dir, v); break;
    case 2: full(write(fds[side][0], buf, 64), 64, "write"); break;
    case 3: memcpy(sh->data[dir], buf, 64); full(write(fds[dir][1], &one, 8), 8, "eventfd write"); break;
    case 4: full(write(fds[dir][1], buf, 64), 64, "pipe write"); break;
  }
}
static void recv_msg(int side, uint32_t v) {
  int dir = 1 - side;
  uint64_t n;
  switch (kind) {
    case 0: case 1: case 5: await(dir, v); break;
    case 2: full(read(fds[side][0], buf, 64), 64, "read"); break;
    case 3: full(read(fds[dir][0], &n, 8), 8, "eventfd read"); memcpy(buf, sh->data[dir], 64); break;
    case 4: full(read(fds[dir][0], buf, 64), 64, "pipe read"); break;
  }
}

int main(int argc, char **argv) {
  const char *names[] = {"futex", "futex-spin", "unix", "eventfd", "pipe", "futex-timed"};
  kind = -1;
  for (int i = 0; i < 6; i++) if (argc > 1 && !strcmp(argv[1], names[i])) kind = i;
  if (kind < 0) { fprintf(stderr, "usage: %s futex|futex-spin|futex-timed|unix|eventfd|pipe [N] [SPIN_NS]\n", argv[0]); return 2; }
  long n = argc > 2 ? strtol(argv[2], 0, 0) : 20000;
  if (argc > 3) spin_ns = strtol(argv[3], 0, 0);
  sh = mmap(0, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (kind == 2) { int sv[2]; if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 1; fds[0][0] = sv[0]; fds[1][0] = sv[1]; }
  if (kind == 3) for (int d = 0; d < 2; d++) { int e = eventfd(0, 0); fds[d][0] = fds[d][1] = e; }
  if (kind == 4) for (int d = 0; d < 2; d++) if (pipe(fds[d])) return 1;
  uint64_t *lat = malloc(n * sizeof *lat);
  long warm = n / 10;
  if (fork() == 0) {
    pin(1);
    for (uint32_t s = 1; s <= (uint32_t)(n + warm); s++) { recv_msg(1, s); send_msg(1, s); }
    _exit(0);
  }
  pin(0);
  uint64_t last = 0;
  for (uint32_t s = 1; s <= (uint32_t)(n + warm); s++) {
    send_msg(0, s); recv_msg(0, s);
    uint64_t t = now_ns();
    if (s > (uint32_t)warm) lat[s - warm - 1] = t - last;
    last = t;
  }
  wait(0);
  qsort(lat, n, sizeof *lat, cmp);
  printf("%-10s round_trips %ld p50_ns %lu p99_ns %lu\n", names[kind], n, (unsigned long)lat[n / 2], (unsigned long)lat[n * 99 / 100]);
  return 0;
}
