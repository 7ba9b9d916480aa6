// Package analyzer will hold archangel's model tier: time-budgeted scoring
// of notified calls that no rule decides, deferred completion into the
// decision cache, and the learner that turns repeated verdicts into rules
// (DESIGN.md, step 5). It is pure Go: no fds, no syscalls, no cgo, and it
// imports nothing from archangel but profiles.
//
// Nothing is implemented yet; the supervisor decides with rules and the
// profile's [supervisor] default until it is.
package analyzer
