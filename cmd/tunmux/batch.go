package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

// batchState is what the commands of one batch share: the lock on the
// root, taken by the first command that writes and held to the end, and the
// scope in which each pinned map is opened once.
type batchState struct {
	lock     *maps.Lock
	endReuse func()
}

// lockOn returns the batch's lock on root, taking it (again, if the folder
// was removed and made anew since, as unload --all and load do) when needed.
func (b *batchState) lockOn(root *maps.Root, a *app) (*maps.Lock, error) {
	if b.lock != nil && b.lock.Root().Path == root.Path && b.lock.Current() {
		return b.lock, nil
	}
	lock, err := root.Lock(a.lockTimeout)
	if err != nil {
		return nil, err
	}
	a.warnTightened(lock)
	b.lock.Release()
	b.lock = lock
	return lock, nil
}

// reuse opens a scope in which each dataplane's pinned maps are opened once
// (ending the one before): the pins do not change under the lock except by
// the commands that load and unload, after which the scope starts again.
func (b *batchState) reuse(path string) {
	b.end()
	if root, err := maps.OpenRoot(path, false); err == nil {
		b.endReuse = dataplane.Reuse(root)
	}
}

func (b *batchState) end() {
	if b.endReuse != nil {
		b.endReuse()
		b.endReuse = nil
	}
}

// splitLine splits a batch line into words as a shell would for simple
// command lines: blanks separate words, '…' and "…" quote (\ escapes inside
// "…" and outside quotes), and # starts a comment outside quotes.
func splitLine(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '#' && !inWord:
			return words, nil
		case c == ' ' || c == '\t' || c == '\r':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("a ' is not closed")
			}
			cur.WriteString(line[i+1 : i+1+end])
			i, inWord = i+1+end, true
		case c == '"':
			j := i + 1
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' && j+1 < len(line) {
					j++
				}
				cur.WriteByte(line[j])
			}
			if j >= len(line) {
				return nil, errors.New(`a " is not closed`)
			}
			i, inWord = j, true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// batchLine is the JSON line of one command of a batch.
type batchLine struct {
	Line     int             `json:"line"`
	Args     []string        `json:"args"`
	Exit     int             `json:"exit"`
	Output   json.RawMessage `json:"output"`
	Error    string          `json:"error,omitempty"`
	Warnings []string        `json:"warnings"`
}

func (a *app) batchCommand() *cobra.Command {
	var (
		file      string
		continues bool
	)
	cmd := &cobra.Command{
		Use:   "batch -f FILE|-",
		Short: "Run many tunmux commands from a file, in one process under one lock",
		Long: `Run the commands of FILE (- for standard input), one a line, as tunmux would
run them one by one: the same grammar (without the word tunmux), the global
flags of this command line applied to each (a line may give its own), '#'
comments and blank lines skipped, words quoted as in a shell ('…', "…", \).
One process opens each pinned map once and holds the lock on the root from the
first write to the end: thousands of entries in seconds, where as many
processes take minutes.

The batch stops at the first command that fails, naming its line, and exits
with that command's code; with --continue it goes on and exits with the code
of the first failure. With -o json each command prints one JSON line:
{"line", "args", "exit", "output" (the command's JSON), "error", "warnings"}.
'apply --watch' and 'batch' itself cannot run inside a batch.`,
		Example: `  tunmux batch -f tunnels.txt
  printf 'load encap\ntunnel add --inner-src 10.0.0.1 --inner-dst 10.0.0.2 --proto vlan --vlan-id 7 --underlay eth0 --overlay veth-wl\n' | tunmux batch -f -
  tunmux batch -f cmds.txt --continue -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return maps.Invalid("-f", "", "is required", "a file of tunmux commands, one a line, or - for standard input")
			}
			in := cmd.InOrStdin()
			if file != "-" {
				f, err := os.Open(file)
				if errors.Is(err, os.ErrNotExist) {
					return maps.Invalid("-f", file, "no such file", "a file of tunmux commands, or - for standard input")
				}
				if err != nil {
					return fmt.Errorf("read %s: %w", file, err)
				}
				defer f.Close()
				in = f
			}
			// The whole batch runs on a thread inside --netns: each
			// command's namespace work then runs where it is, instead of
			// on a thread made for it.
			return netdev.Do(a.netns, func() error { return a.runBatch(in, continues) })
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the file of commands, one a line (- for standard input)")
	cmd.Flags().BoolVar(&continues, "continue", false, "go on after a command fails (exit with the first failure's code)")
	return cmd
}

// globalArgs are this invocation's global flags, for each command of a batch.
func (a *app) globalArgs() []string {
	args := []string{"-o", a.output, "--lock-timeout", a.lockTimeout.String()}
	if a.bpffs != "" {
		args = append(args, "--bpffs", a.bpffs)
	}
	if a.netns != "" {
		args = append(args, "--netns", a.netns)
	}
	return args
}

// batchError is a batch that stopped (or, with --continue, went on) after a
// command failed: it exits with that command's code.
type batchError struct {
	line int
	code int
	err  error
}

func (e batchError) Error() string {
	return fmt.Sprintf("batch: line %d failed (exit %d); its error is above", e.line, e.code)
}
func (e batchError) Unwrap() error { return e.err }

// entryCommands are the commands that write or read entries only: the
// interfaces a batch looked up stay as they were across them.
var entryCommands = map[string]bool{"tunnel": true, "devmap": true, "xconnect": true, "l2tp": true, "peer": true, "route": true, "stats": true, "status": true, "export": true}

// runBatch runs the commands read from in.
func (a *app) runBatch(in io.Reader, continues bool) error {
	// Interfaces are looked up once for the batch (netdev.Memo): every
	// change tunmux makes to an interface forgets what was looked up, and
	// so does every command that is not one of entries.
	runtime.LockOSThread() // for the memo: see netdev.Memo
	defer runtime.UnlockOSThread()
	defer netdev.Memo()()
	state := &batchState{}
	defer func() {
		state.end()
		state.lock.Release()
	}()
	path := maps.RootPath(a.bpffs)
	state.reuse(path)
	var first *batchError
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		words, err := splitLine(sc.Text())
		if err == nil && len(words) > 0 && words[0] == "tunmux" {
			words = words[1:]
		}
		if err == nil && len(words) == 0 {
			continue
		}
		code := exitInvalid
		var out, errb bytes.Buffer
		switch {
		case err != nil:
			err = usageError{fmt.Errorf("%w", err)}
		case words[0] == "batch" || words[0] == "apply" && containsWord(words, "--watch"):
			err = usageError{fmt.Errorf("%s cannot run inside a batch", strings.Join(words[:1], " "))}
		default:
			repins := words[0] == "load" || words[0] == "unload" || words[0] == "apply"
			if repins {
				state.end()
			}
			if !entryCommands[words[0]] {
				netdev.Forget()
			}
			sub := &app{out: &out, errw: &errb, batch: state}
			args := append(a.globalArgs(), words...)
			root := sub.rootCommand(args)
			root.SetArgs(args)
			root.SetOut(&out)
			root.SetErr(&errb)
			err = root.Execute()
			if !entryCommands[words[0]] {
				netdev.Forget()
			}
			if repins {
				state.reuse(path)
			}
			code = exitOK
			if err != nil {
				code = exitCode(err)
			}
		}
		a.reportBatchLine(n, words, code, out.Bytes(), errb.String(), err)
		if err != nil && first == nil {
			first = &batchError{line: n, code: code, err: err}
		}
		if err != nil && !continues {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read the batch: %w", err)
	}
	if first != nil {
		return *first
	}
	return nil
}

func containsWord(words []string, w string) bool {
	for _, x := range words {
		if x == w {
			return true
		}
	}
	return false
}

// reportBatchLine prints what one command of a batch did: its output and
// warnings as the command prints them, or, with -o json, one JSON line.
func (a *app) reportBatchLine(n int, words []string, code int, out []byte, stderr string, err error) {
	if a.output != "json" {
		_, _ = a.out.Write(out)
		_, _ = io.WriteString(a.errw, stderr)
		if err != nil {
			fmt.Fprintf(a.errw, "tunmux: batch: line %d: %s\n", n, indentJoined(err))
		}
		return
	}
	l := batchLine{Line: n, Args: words, Exit: code, Warnings: warningsIn(stderr)}
	if l.Args == nil {
		l.Args = []string{}
	}
	var compact bytes.Buffer
	if json.Compact(&compact, out) == nil && compact.Len() > 0 {
		l.Output = compact.Bytes()
	}
	if err != nil {
		l.Error = indentJoined(err)
	}
	enc := json.NewEncoder(a.out)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(l) // one line
}

// warningsIn returns the warnings a command printed on standard error.
func warningsIn(stderr string) []string {
	out := []string{}
	for _, line := range strings.Split(stderr, "\n") {
		if w, ok := strings.CutPrefix(line, "tunmux: warning: "); ok {
			out = append(out, w)
		}
	}
	return out
}
