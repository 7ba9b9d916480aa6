/* memfdexec (C): copy a program (read from $RD_PAYLOAD before the marker,
 * standing in for bytes received over the network) into a memfd and
 * fexecve it: nothing touches the file system. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "mark.h"

static char buf[1 << 20];

int main(void) {
	int in = open(getenv("RD_PAYLOAD"), O_RDONLY);
	ssize_t n = read(in, buf, sizeof buf);
	close(in);
	RD_BEGIN("memfdexec");
	int fd = memfd_create("", MFD_CLOEXEC);
	write(fd, buf, n);
	char *argv[] = {"[kthreadd]", NULL};
	fexecve(fd, argv, (char *[]){NULL});
	return 1;
}
