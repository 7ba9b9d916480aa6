package integration

import (
	"os"
	"testing"

	"github.com/archangel-sandbox/archangel/internal/kernel"
)

// requireNotify skips when the kernel lacks seccomp user notification,
// saying why; with ARCHANGEL_REQUIRE_ALL_FEATURES=1 (CI) it fails instead.
func requireNotify(t *testing.T) {
	t.Helper()
	if err := kernel.ProbeUserNotif(); err != nil {
		missing(t, err.Error())
	}
}

func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("ARCHANGEL_REQUIRE_ALL_FEATURES") == "1" {
		t.Fatalf("%s (ARCHANGEL_REQUIRE_ALL_FEATURES=1 makes this a failure)", why)
	}
	t.Skipf("skipped: %s", why)
}
