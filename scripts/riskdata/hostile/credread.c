/* credread (C): read the SSH key, the AWS credentials and /etc/shadow. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "mark.h"

static long slurp(const char *p) {
	char buf[4096];
	long n = 0, r;
	int fd = open(p, O_RDONLY);
	if (fd < 0) return -1;
	while ((r = read(fd, buf, sizeof buf)) > 0) n += r;
	close(fd);
	return n;
}

int main(void) {
	char p[512];
	const char *home = getenv("HOME");
	RD_BEGIN("credread");
	snprintf(p, sizeof p, "%s/.ssh/id_rsa", home);
	printf("%ld\n", slurp(p));
	snprintf(p, sizeof p, "%s/.aws/credentials", home);
	printf("%ld\n", slurp(p));
	printf("%ld\n", slurp("/etc/shadow"));
	RD_END();
	return 0;
}
