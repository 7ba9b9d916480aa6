// Package examples holds sample profiles, a systemd unit and demo material.
// It has no code; its test loads every sample profile so that none rots.
package examples
