// The minimal ping-pong (issue 23): two processes pinned to CPUs 0 and 1,
// one shared anonymous mapping, a sequence word per direction, the payload
// copied in (memcpy) before the sequence word is bumped and copied out
// (memcpy) after it is seen, busy waiting. Nothing of ipclab.
//
//   bare_pingpong [SIZE=64] [ROUND_TRIPS=2000000]
//
// Prints one line: size, round trips, the mean round trip with no clock
// read inside the loop, and the p50/p99 with one clock read per round trip
// (as ipclab's pingpong times them). The receiver compares the first and
// last word of what it copied out with what it expects, so the copies
// cannot be optimised away.
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct dir {
  _Alignas(128) volatile uint64_t seq;  // its own 128-byte line pair
  _Alignas(128) unsigned char data[];   // then the payload
};

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

int main(int argc, char **argv) {
  size_t size = argc > 1 ? strtoul(argv[1], 0, 0) : 64;
  long n = argc > 2 ? strtol(argv[2], 0, 0) : 2000000;
  size_t stride = 128 + (size + 127) / 128 * 128;
  char *m = mmap(0, 2 * stride, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (m == MAP_FAILED) { perror("mmap"); return 1; }
  struct dir *ping = (struct dir *)m, *pong = (struct dir *)(m + stride);
  unsigned char *out = aligned_alloc(64, size + 64), *in = aligned_alloc(64, size + 64);
  uint64_t *lat = malloc(n * sizeof *lat);
  long total = 2 * n + n / 10;  // warm-up, untimed, timed
  pid_t kid = fork();
  if (kid == 0) {  // server: echo every message back
    pin(1);
    for (uint64_t s = 1; s <= (uint64_t)total; s++) {
      while (ping->seq != s) __builtin_ia32_pause();
      memcpy(in, ping->data, size);
      if (size >= 8 && *(uint64_t *)in != s) { fprintf(stderr, "server: bad payload\n"); _exit(1); }
      memcpy(out, in, size);
      memcpy(pong->data, out, size);
      __atomic_store_n(&pong->seq, s, __ATOMIC_RELEASE);
    }
    _exit(0);
  }
  pin(0);
  memset(out, 0xA5, size);
  uint64_t s = 0, t0 = 0, t1 = 0;
#define ROUND() do { s++; if (size >= 8) memcpy(out, &s, 8); memcpy(ping->data, out, size); \
    __atomic_store_n(&ping->seq, s, __ATOMIC_RELEASE); \
    while (pong->seq != s) __builtin_ia32_pause(); \
    memcpy(in, pong->data, size); \
    if (size >= 8 && *(uint64_t *)in != s) { fprintf(stderr, "client: bad payload\n"); return 1; } } while (0)
  for (long i = 0; i < n / 10; i++) ROUND();
  t0 = now_ns();
  for (long i = 0; i < n; i++) ROUND();
  t1 = now_ns();
  uint64_t last = now_ns();
  for (long i = 0; i < n; i++) { ROUND(); uint64_t t = now_ns(); lat[i] = t - last; last = t; }
  int st; waitpid(kid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st)) { fprintf(stderr, "server failed\n"); return 1; }
  qsort(lat, n, sizeof *lat, cmp);
  printf("bare-c size %zu round_trips %ld mean_ns %.1f p50_ns %lu p99_ns %lu\n", size, n,
         (double)(t1 - t0) / n, (unsigned long)lat[n / 2], (unsigned long)lat[n * 99 / 100]);
  return 0;
}
