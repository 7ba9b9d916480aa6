/* modload (C): try to load a kernel module from a buffer and from a file.
 * The "module" is a few bytes of text, which the kernel rejects (ENOEXEC
 * or a signature error): the attempt is the event; nothing is loaded. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "mark.h"

int main(void) {
	static const char fake[] = "not a kernel module, archangel risk data\n";
	const char *p = "/tmp/.rd-fake.ko";
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	write(fd, fake, sizeof fake);
	close(fd);
	RD_BEGIN("modload");
	syscall(SYS_init_module, fake, sizeof fake, "");
	fd = open(p, O_RDONLY);
	syscall(SYS_finit_module, fd, "", 0);
	close(fd);
	RD_END();
	unlink(p);
	return 0;
}
