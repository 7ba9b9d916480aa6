/* wx (C): two ways to get writable and executable memory: an anonymous
 * RWX mapping, and a RW mapping switched to RWX with mprotect. A one-byte
 * "ret" is written and called in each. */
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include "mark.h"

int main(int argc, char **argv) {
	RD_BEGIN("wx");
	unsigned char *p;
	if (argc > 1) {
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		p[0] = 0xc3;
		mprotect(p, 4096, PROT_READ | PROT_WRITE | PROT_EXEC);
	} else {
		p = mmap(NULL, 8192, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		p[0] = 0xc3;
	}
	((void (*)(void))p)();
	RD_END();
	return 0;
}
