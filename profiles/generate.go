package profiles

//go:generate go run ./internal/gen -unistd /usr/include/x86_64-linux-gnu/asm/unistd_64.h -errno /usr/include/asm-generic -o .
