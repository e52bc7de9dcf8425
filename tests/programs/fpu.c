/* fpu.c - FPU/SSE/AVX/AVX-512 register state survives the dump.
 *
 * One inline-asm block loads known, distinct patterns into the vector
 * registers (zmm0-31 and k0-7 with AVX-512, else ymm0-15 with AVX, else
 * xmm0-15), the x87 stack st0-7, the x87 control word and MXCSR, then writes
 * READY with a raw write syscall (which preserves them) and loops: each pass
 * stores every register to memory and compares with the patterns using only
 * general purpose registers, counts the pass, and exits when zt_stop is set
 * (read from memory). No function is called while the registers hold the
 * patterns. Any difference ends the loop early; the program then waits for
 * SIGTERM and reports FAIL naming the register.
 *
 * ZT_FPU_KIND=avx or ZT_FPU_KIND=sse in the environment selects a smaller variant.
 *
 * Note: READY is written by the asm block itself, not by zt_ready(), so that
 * READY implies the registers are loaded.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <cpuid.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fpu_state {
	uint8_t pat[32 * 64];
	uint8_t scr[32 * 64];
	uint8_t fx[512];      /* fxsave area (16-byte aligned) */
	long double x87[8];   /* 16 bytes each on x86_64, 10 significant */
	uint16_t patk[8];
	uint16_t scrk[8];
	uint32_t mxw, mxg, mx_orig;
	uint16_t fcw, fcg, fcw_orig;
	const volatile sig_atomic_t *stopp;
	uint64_t iterations;
	int64_t bad; /* -2: not finished, -1: ok, else a BAD_* code */
	uint64_t badw;
	int64_t readyret;
	char msg[8];
} __attribute__((aligned(64)));

enum { BAD_VEC = 1, BAD_K = 2, BAD_MXCSR = 3, BAD_FCW = 4, BAD_X87 = 5 };

static struct fpu_state S;

#define OPS                                                                                                   \
	[b] "r"(&S), [o_pat] "i"(offsetof(struct fpu_state, pat)), [o_scr] "i"(offsetof(struct fpu_state, scr)),   \
		[o_fx] "i"(offsetof(struct fpu_state, fx)), [o_x87] "i"(offsetof(struct fpu_state, x87)),           \
		[o_patk] "i"(offsetof(struct fpu_state, patk)), [o_scrk] "i"(offsetof(struct fpu_state, scrk)),     \
		[o_mxw] "i"(offsetof(struct fpu_state, mxw)), [o_mxg] "i"(offsetof(struct fpu_state, mxg)),         \
		[o_mxo] "i"(offsetof(struct fpu_state, mx_orig)), [o_fcw] "i"(offsetof(struct fpu_state, fcw)),     \
		[o_fcg] "i"(offsetof(struct fpu_state, fcg)), [o_fco] "i"(offsetof(struct fpu_state, fcw_orig)),    \
		[o_stopp] "i"(offsetof(struct fpu_state, stopp)), [o_iter] "i"(offsetof(struct fpu_state, iterations)), \
		[o_bad] "i"(offsetof(struct fpu_state, bad)), [o_badw] "i"(offsetof(struct fpu_state, badw)),       \
		[o_rr] "i"(offsetof(struct fpu_state, readyret)), [o_msg] "i"(offsetof(struct fpu_state, msg))

#define CLOBBERS_BASE                                                                                          \
	"rax", "rcx", "rdx", "rsi", "rdi", "r11", "cc", "memory", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", \
		"st(6)", "st(7)", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",    \
		"xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

#define REGS16 "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15"
#define REGS32 REGS16 ",16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31"

/* x87 control word and MXCSR, then st7..st0 so that st(i) = x87[i] */
#define ASM_LOAD_X87                                                                                           \
	"fnstcw %c[o_fco](%[b])\n\t"                                                                           \
	"stmxcsr %c[o_mxo](%[b])\n\t"                                                                          \
	"fninit\n\t"                                                                                           \
	"fldcw %c[o_fcw](%[b])\n\t"                                                                            \
	"ldmxcsr %c[o_mxw](%[b])\n\t"                                                                          \
	".irp i,7,6,5,4,3,2,1,0\n\t"                                                                           \
	"fldt %c[o_x87]+\\i*16(%[b])\n\t"                                                                      \
	".endr\n\t"

/* write(1, "READY\n", 6) without touching vector or x87 registers */
#define ASM_READY                                                                                              \
	"mov $1, %%eax\n\t"                                                                                    \
	"mov $1, %%edi\n\t"                                                                                    \
	"lea %c[o_msg](%[b]), %%rsi\n\t"                                                                       \
	"mov $6, %%edx\n\t"                                                                                    \
	"syscall\n\t"                                                                                          \
	"mov %%rax, %c[o_rr](%[b])\n\t"

/* compare NW 8-byte words of scr with pat, then MXCSR, FCW and the x87 stack */
#define ASM_CHECK_COMMON(NW)                                                                                   \
	"stmxcsr %c[o_mxg](%[b])\n\t"                                                                          \
	"fnstcw %c[o_fcg](%[b])\n\t"                                                                           \
	"fxsave %c[o_fx](%[b])\n\t"                                                                            \
	"xor %%ecx, %%ecx\n\t"                                                                                 \
	"cmpv%=:\n\t"                                                                                          \
	"mov %c[o_scr](%[b],%%rcx,8), %%rax\n\t"                                                               \
	"cmp %c[o_pat](%[b],%%rcx,8), %%rax\n\t"                                                               \
	"jne badv%=\n\t"                                                                                       \
	"inc %%rcx\n\t"                                                                                        \
	"cmp $" #NW ", %%rcx\n\t"                                                                              \
	"jb cmpv%=\n\t"                                                                                        \
	"mov %c[o_mxg](%[b]), %%eax\n\t"                                                                       \
	"cmp %c[o_mxw](%[b]), %%eax\n\t"                                                                       \
	"jne badmx%=\n\t"                                                                                      \
	"movzwl %c[o_fcg](%[b]), %%eax\n\t"                                                                    \
	"cmpw %c[o_fcw](%[b]), %%ax\n\t"                                                                       \
	"jne badfcw%=\n\t"                                                                                     \
	".irp i,0,1,2,3,4,5,6,7\n\t"                                                                           \
	"mov $\\i, %%edx\n\t"                                                                                  \
	"mov %c[o_fx]+32+\\i*16(%[b]), %%rax\n\t"                                                              \
	"cmp %c[o_x87]+\\i*16(%[b]), %%rax\n\t"                                                                \
	"jne badx%=\n\t"                                                                                       \
	"movzwl %c[o_fx]+40+\\i*16(%[b]), %%eax\n\t"                                                           \
	"cmpw %c[o_x87]+8+\\i*16(%[b]), %%ax\n\t"                                                              \
	"jne badx%=\n\t"                                                                                       \
	".endr\n\t"

/* count the pass; loop until *stopp != 0 */
#define ASM_LOOP_TAIL                                                                                          \
	"incq %c[o_iter](%[b])\n\t"                                                                            \
	"mov %c[o_stopp](%[b]), %%rax\n\t"                                                                     \
	"cmpl $0, (%%rax)\n\t"                                                                                 \
	"je loop%=\n\t"                                                                                        \
	"movq $-1, %c[o_bad](%[b])\n\t"                                                                        \
	"jmp done%=\n\t"                                                                                       \
	"badv%=:\n\t"                                                                                          \
	"mov %%rcx, %c[o_badw](%[b])\n\t"                                                                      \
	"movq $1, %c[o_bad](%[b])\n\t"                                                                         \
	"jmp done%=\n\t"                                                                                       \
	"badk%=:\n\t"                                                                                          \
	"movq $2, %c[o_bad](%[b])\n\t"                                                                         \
	"jmp done%=\n\t"                                                                                       \
	"badmx%=:\n\t"                                                                                         \
	"movq $3, %c[o_bad](%[b])\n\t"                                                                         \
	"jmp done%=\n\t"                                                                                       \
	"badfcw%=:\n\t"                                                                                        \
	"movq $4, %c[o_bad](%[b])\n\t"                                                                         \
	"jmp done%=\n\t"                                                                                       \
	"badx%=:\n\t"                                                                                          \
	"mov %%rdx, %c[o_badw](%[b])\n\t"                                                                      \
	"movq $5, %c[o_bad](%[b])\n\t"                                                                         \
	"done%=:\n\t"                                                                                          \
	"fninit\n\t"                                                                                           \
	"fldcw %c[o_fco](%[b])\n\t"                                                                            \
	"ldmxcsr %c[o_mxo](%[b])\n\t"

/* target("avx512f") only so that GCC accepts the k and xmm16-31 clobbers; the body is asm */
__attribute__((noinline, target("avx512f"))) static void run_avx512(void)
{
	__asm__ volatile(
		".irp i," REGS32 "\n\t"
		"vmovdqu64 %c[o_pat]+\\i*64(%[b]), %%zmm\\i\n\t"
		".endr\n\t"
		".irp i,0,1,2,3,4,5,6,7\n\t"
		"kmovw %c[o_patk]+\\i*2(%[b]), %%k\\i\n\t"
		".endr\n\t"
		ASM_LOAD_X87
		ASM_READY
		"loop%=:\n\t"
		".irp i," REGS32 "\n\t"
		"vmovdqu64 %%zmm\\i, %c[o_scr]+\\i*64(%[b])\n\t"
		".endr\n\t"
		".irp i,0,1,2,3,4,5,6,7\n\t"
		"kmovw %%k\\i, %c[o_scrk]+\\i*2(%[b])\n\t"
		".endr\n\t"
		"mov %c[o_scrk](%[b]), %%rax\n\t"
		"cmp %c[o_patk](%[b]), %%rax\n\t"
		"jne badk%=\n\t"
		"mov %c[o_scrk]+8(%[b]), %%rax\n\t"
		"cmp %c[o_patk]+8(%[b]), %%rax\n\t"
		"jne badk%=\n\t"
		ASM_CHECK_COMMON(256) /* 32 * 64 / 8 */
		ASM_LOOP_TAIL
		"vzeroupper\n\t"
		:
		: OPS
		: CLOBBERS_BASE, "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24",
		  "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k0", "k1", "k2", "k3", "k4", "k5",
		  "k6", "k7");
}

__attribute__((noinline)) static void run_avx(void)
{
	__asm__ volatile(
		".irp i," REGS16 "\n\t"
		"vmovdqu %c[o_pat]+\\i*32(%[b]), %%ymm\\i\n\t"
		".endr\n\t"
		ASM_LOAD_X87
		ASM_READY
		"loop%=:\n\t"
		".irp i," REGS16 "\n\t"
		"vmovdqu %%ymm\\i, %c[o_scr]+\\i*32(%[b])\n\t"
		".endr\n\t"
		ASM_CHECK_COMMON(64) /* 16 * 32 / 8 */
		ASM_LOOP_TAIL
		"badk_unused%=:\n\t"
		"vzeroupper\n\t"
		:
		: OPS
		: CLOBBERS_BASE);
}

__attribute__((noinline)) static void run_sse(void)
{
	__asm__ volatile(
		".irp i," REGS16 "\n\t"
		"movdqu %c[o_pat]+\\i*16(%[b]), %%xmm\\i\n\t"
		".endr\n\t"
		ASM_LOAD_X87
		ASM_READY
		"loop%=:\n\t"
		".irp i," REGS16 "\n\t"
		"movdqu %%xmm\\i, %c[o_scr]+\\i*16(%[b])\n\t"
		".endr\n\t"
		ASM_CHECK_COMMON(32) /* 16 * 16 / 8 */
		ASM_LOOP_TAIL
		:
		: OPS
		: CLOBBERS_BASE);
}

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

int main(void)
{
	unsigned a, b, c, d;
	int osxsave, avx, avx512;
	int slot;
	const char *kind;
	uint64_t s = 0x243F6A8885A308D3ULL;

	__cpuid(1, a, b, c, d);
	osxsave = (c >> 27) & 1;
	avx = osxsave && ((c >> 28) & 1) && (xgetbv0() & 0x6) == 0x6;
	avx512 = 0;
	if (avx && __get_cpuid_max(0, NULL) >= 7) {
		__cpuid_count(7, 0, a, b, c, d);
		avx512 = ((b >> 16) & 1) && (xgetbv0() & 0xE6) == 0xE6;
	}
	/* ZT_FPU_KIND=avx|sse downgrades (to exercise the other variants on a bigger CPU) */
	{
		const char *force = getenv("ZT_FPU_KIND");
		if (force && strcmp(force, "avx") == 0)
			avx512 = 0;
		else if (force && strcmp(force, "sse") == 0)
			avx512 = avx = 0;
	}
	slot = avx512 ? 64 : avx ? 32 : 16;
	kind = avx512 ? "zmm0-31+k0-7" : avx ? "ymm0-15" : "xmm0-15";

	/* distinct patterns: every byte of every register differs from the same byte elsewhere */
	for (size_t i = 0; i < sizeof(S.pat); i += 8) {
		uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
		z ^= z >> 31;
		memcpy(S.pat + i, &z, 8);
	}
	for (int i = 0; i < 8; i++) {
		S.patk[i] = (uint16_t)(0xA5C3 ^ (i * 0x1111) ^ (i << 13));
		S.x87[i] = 3.14159265358979323846264338327950288L * (i + 1) + 1.0L / (i + 3);
	}
	S.mxw = 0x1F80 | 0x6000 | 0x8000; /* all exceptions masked, round toward zero, flush to zero */
	S.fcw = 0x0E7F;                   /* all exceptions masked, double precision, truncate */
	S.stopp = &zt_stop;
	S.bad = -2;
	memcpy(S.msg, "READY\n", 6);

	if (avx512)
		run_avx512();
	else if (avx)
		run_avx();
	else
		run_sse();

	if (S.readyret != 6)
		zt_fail("raw write of READY returned %lld", (long long)S.readyret);
	if (S.bad != -1)
		zt_wait_stop(); /* keep the protocol: report after SIGTERM */

	switch (S.bad) {
	case -1:
		break;
	case BAD_VEC: {
		size_t off = S.badw * 8;
		uint64_t got, want;
		memcpy(&got, S.scr + off, 8);
		memcpy(&want, S.pat + off, 8);
		zt_fail("%s: register %zu, bytes %zu..%zu are %016llx, expected %016llx (after %llu passes)", kind,
			off / (size_t)slot, off % (size_t)slot, off % (size_t)slot + 7, (unsigned long long)got,
			(unsigned long long)want, (unsigned long long)S.iterations);
	}
	case BAD_K:
		zt_fail("opmask registers changed: k0..k7 = %04x %04x %04x %04x %04x %04x %04x %04x", S.scrk[0],
			S.scrk[1], S.scrk[2], S.scrk[3], S.scrk[4], S.scrk[5], S.scrk[6], S.scrk[7]);
	case BAD_MXCSR:
		zt_fail("MXCSR is %#x, expected %#x", S.mxg, S.mxw);
	case BAD_FCW:
		zt_fail("x87 control word is %#x, expected %#x", S.fcg, S.fcw);
	case BAD_X87:
		zt_fail("x87 register st(%llu) changed", (unsigned long long)S.badw);
	default:
		zt_fail("check loop ended in state %lld", (long long)S.bad);
	}
	if (S.iterations < 2)
		zt_fail("check loop ran only %llu passes", (unsigned long long)S.iterations);
	zt_pass();
}
