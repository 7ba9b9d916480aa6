/* ptrace (C): two children of one parent; the second attaches to the
 * first (its sibling, not its descendant), reads a word and detaches.
 * argv[1] == "seize" uses PTRACE_SEIZE + PTRACE_INTERRUPT instead. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mark.h"

int main(int argc, char **argv) {
	pid_t a = fork();
	if (a == 0) { for (;;) pause(); }
	pid_t b = fork();
	if (b == 0) {
		RD_BEGIN("ptrace");
		if (argc > 1 && strcmp(argv[1], "seize") == 0) {
			ptrace(PTRACE_SEIZE, a, 0, 0);
			ptrace(PTRACE_INTERRUPT, a, 0, 0);
		} else {
			ptrace(PTRACE_ATTACH, a, 0, 0);
		}
		waitpid(a, NULL, __WALL);
		ptrace(PTRACE_PEEKDATA, a, (void *)0x400000, 0);
		ptrace(PTRACE_DETACH, a, 0, 0);
		RD_END();
		_exit(0);
	}
	waitpid(b, NULL, 0);
	kill(a, SIGKILL);
	waitpid(a, NULL, 0);
	return 0;
}
