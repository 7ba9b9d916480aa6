// Package analyzer will hold archangel's model tier: time-budgeted scoring
// of notified calls that no rule decides, deferred completion into the
// decision cache, and the learner that turns repeated verdicts into rules
// (DESIGN.md, step 5). It is pure Go: no fds, no syscalls, no cgo, and it
// imports nothing from archangel but profiles.
//
// The sequence model is the behaviour learner's first part: SeqModel, a
// Kneser-Ney or Witten-Bell n-gram language model over one program's
// syscall numbers plus a suffix automaton of its training traces, and
// Stream, which scores one thread's calls as they happen without
// allocating (Observe, Score). EvalADFA measures it offline on ADFA-LD;
// LoadADFA is the one function here that reads files, and the supervisor
// never calls it.
//
// The supervisor does not consult the model yet; it decides with rules and
// the profile's [supervisor] default.
package analyzer
