module github.com/archangel-sandbox/archangel

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/alecthomas/kong v1.17.0
	golang.org/x/sys v0.50.0
)

require github.com/seccomp/libseccomp-golang v0.11.1

require github.com/cilium/ebpf v0.22.0
