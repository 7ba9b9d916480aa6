/* A benign C tool for the risk data, built next to the hostile C programs
 * (so that "a program under a temp directory" is not by itself a hostile
 * sign): it reads configuration, writes and maps a scratch file, runs a
 * child program, and fetches a page from the loopback web server. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
	char buf[4096];
	int fd = open("/etc/hostname", O_RDONLY);
	if (fd >= 0) { read(fd, buf, sizeof buf); close(fd); }
	fd = open("/etc/os-release", O_RDONLY);
	if (fd >= 0) { read(fd, buf, sizeof buf); close(fd); }
	char tmpl[] = "/tmp/ctool.XXXXXX";
	fd = mkstemp(tmpl);
	memset(buf, 'x', sizeof buf);
	write(fd, buf, sizeof buf);
	void *p = mmap(NULL, sizeof buf, PROT_READ, MAP_SHARED, fd, 0);
	if (p != MAP_FAILED) munmap(p, sizeof buf);
	close(fd);
	unlink(tmpl);
	pid_t c = fork();
	if (c == 0) { execl("/bin/date", "date", "-u", (char *)NULL); _exit(127); }
	waitpid(c, NULL, 0);
	const char *port = getenv("RD_HTTP");
	if (port) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
			const char *req = "GET /index.html HTTP/1.0\r\n\r\n";
			write(s, req, strlen(req));
			while (read(s, buf, sizeof buf) > 0) {}
		}
		close(s);
	}
	mkdir("/tmp/ctool-out", 0755);
	fd = open("/tmp/ctool-out/report.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	write(fd, "ok\n", 3);
	close(fd);
	unlink("/tmp/ctool-out/report.txt");
	rmdir("/tmp/ctool-out");
	return 0;
}
