// Package analyzer holds archangel's models (DESIGN.md, step 5): what the
// supervisor's model tier consults for notified calls that no rule
// decides, and what it learns behaviour from. It is pure Go: no fds, no
// syscalls, no cgo, and it imports nothing from archangel but profiles.
//
// Call is the decoded notified call every layer decides on.
//
// The sequence models score one program's stream of system calls:
// SeqModel, a Kneser-Ney or Witten-Bell n-gram language model plus a
// suffix automaton of its training traces, and Stream, which scores one
// thread's calls as they happen without allocating (Observe, Score); the
// supervisor trains one per program in `archangel learn` and scores every
// thread with it in `archangel run`, fed by the syscall tap
// (supervisor/seqtap.go). GRUModel is a recurrent language model for the
// same streams, evaluated offline only. EvalADFA measures both on ADFA-LD
// (`archangel analyzer eval`); LoadADFA is the one function here that
// reads files, and the supervisor never calls it.
//
// The per-event risk model is in analyzer/risk: `[analyzer] model =
// "builtin"`. The time budget, the fallback and the deferred completion
// are the supervisor's (supervisor/analysis.go), since they need its
// receive thread and its cache.
package analyzer
