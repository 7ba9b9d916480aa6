/* The program the dropexec and memfdexec techniques fetch and run. */
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("payload pid %d\n", getpid()); return 0; }
