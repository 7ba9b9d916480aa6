/* credread (C, /proc/PID/mem): read a sibling's memory through
 * /proc/PID/maps and /proc/PID/mem. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mark.h"

int main(void) {
	pid_t sib = fork();
	if (sib == 0) { execl("/bin/sleep", "sleep", "5", (char *)NULL); _exit(1); }
	usleep(200000);
	RD_BEGIN("credread");
	char p[64], line[512];
	unsigned long lo = 0, hi = 0;
	snprintf(p, sizeof p, "/proc/%d/maps", sib);
	FILE *f = fopen(p, "r");
	if (f) {
		while (fgets(line, sizeof line, f))
			if (sscanf(line, "%lx-%lx", &lo, &hi) == 2) break;
		fclose(f);
	}
	snprintf(p, sizeof p, "/proc/%d/mem", sib);
	int fd = open(p, O_RDONLY);
	char buf[256];
	if (fd >= 0) { printf("%zd\n", pread(fd, buf, sizeof buf, (off_t)lo)); close(fd); }
	snprintf(p, sizeof p, "/proc/%d/environ", sib);
	fd = open(p, O_RDONLY);
	if (fd >= 0) { printf("%zd\n", read(fd, buf, sizeof buf)); close(fd); }
	RD_END();
	kill(sib, SIGKILL);
	waitpid(sib, NULL, 0);
	return 0;
}
