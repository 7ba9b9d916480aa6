package kernel

import (
	"errors"
	"fmt"
)

// ErrUnsupported is carried by every error that means "this kernel (or
// platform) does not offer the feature". Match it with errors.Is.
var ErrUnsupported = errors.New("unsupported by this kernel")

// FeatureError names a missing kernel feature and the first Linux release
// that has it.
type FeatureError struct {
	Feature   string
	MinKernel string
	Err       error // what the probe saw
}

func (e *FeatureError) Error() string {
	s := fmt.Sprintf("%s needs Linux >= %s", e.Feature, e.MinKernel)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FeatureError) Is(target error) bool { return target == ErrUnsupported }

func (e *FeatureError) Unwrap() error { return e.Err }
