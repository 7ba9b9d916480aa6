/* unshare (C): a new user and mount namespace, then a tmpfs mount in it. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include "mark.h"

int main(int argc, char **argv) {
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	RD_BEGIN("unshare");
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) perror("unshare");
	mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL);
	if (mount("rd", dir, "tmpfs", 0, "size=1m") != 0) perror("mount");
	RD_END();
	return 0;
}
