// Command loadgen is the bench's compiled gRPC load generator (tests/bench/goclient.py drives
// it): closed-loop Converse turns against Switchboard, timed at the client, with the same turn
// and session shape as the bench's Python grpc.aio client (tests/bench/drivers.py,
// SwitchboardDriver), and its own CPU from getrusage.
//
//	SWITCHBOARD_API_KEY=... loadgen -target 127.0.0.1:50051 -llm llm_... [-sessions] [-channels N]
//
// It prints "LOADGEN ready", then reads one JSON command per line on stdin:
//
//	{"concurrency": 50, "warmup_s": 2, "duration_s": 10}
//
// and runs that many workers, each starting its next turn when the previous one ends. After
// the warm-up it prints "LOADGEN begin", after the measured window "LOADGEN end" (the bench
// samples the other processes' CPU on those lines), then stops the workers, waits up to 30 s
// for the turns in flight, and prints "LOADGEN result <json>": the window's bounds and every
// turn that did not lie wholly inside the warm-up (start, first text delta, end, the text delta
// arrival times, seconds on this process's monotonic clock; text bytes; the error, if any), so
// the bench summarises them with the same code as its own turns. cpu_s is user + system CPU of
// this process (all threads) between "begin" and "end". EOF on stdin ends the process.
//
// With -sessions a worker opens a session (not timed), runs -session-turns turns on it, ends
// it and opens the next; stateless turns send the LLM id and one user message.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchboard/switchboard/clients/go/switchboard"
	pb "github.com/switchboard/switchboard/clients/go/switchboardv1"
)

const drainTimeout = 30 * time.Second // as tests/bench/load.py's DRAIN_S

var base = time.Now() // every time reported is seconds since this, on the monotonic clock

func now() float64 { return time.Since(base).Seconds() }

type config struct {
	llmID, prompt, systemPrompt string
	sessions                    bool
	sessionTurns                int
	deadline                    time.Duration
}

type command struct {
	Concurrency int     `json:"concurrency"`
	WarmupS     float64 `json:"warmup_s"`
	DurationS   float64 `json:"duration_s"`
}

// turn is one Converse turn as the bench's TurnResult sees it.
type turn struct {
	Start float64   `json:"s"`
	First float64   `json:"f"` // 0: no text arrived
	End   float64   `json:"e"` // 0: never sent (its session could not be opened)
	Bytes int       `json:"b"`
	Error string    `json:"err,omitempty"`
	Marks []float64 `json:"m"`
}

type result struct {
	Started         float64 `json:"started"`
	Ended           float64 `json:"ended"`
	CPUS            float64 `json:"cpu_s"`
	TurnsRun        int     `json:"turns_run"`        // every turn of the run, warm-up included
	SessionsCreated int     `json:"sessions_created"` // every CreateSession that succeeded
	Turns           []turn  `json:"turns"`
}

func main() {
	target := flag.String("target", "127.0.0.1:50051", "server address")
	llmID := flag.String("llm", "", "the LLM id")
	channels := flag.Int("channels", 1, "gRPC connections the workers are spread over")
	sessions := flag.Bool("sessions", false, "session turns instead of stateless ones")
	sessionTurns := flag.Int("session-turns", 8, "turns per session before it is replaced")
	prompt := flag.String("prompt", "Hi!", "the user message of every turn")
	systemPrompt := flag.String("system", "Be brief.", "the system prompt of every session")
	deadline := flag.Duration("deadline", 60*time.Second, "deadline of each call")
	window := flag.Int("window", 0, "fixed HTTP/2 stream and connection windows in bytes, which "+
		"turns off grpc-go's BDP pings and dynamic window (0: grpc-go's default)")
	flag.Parse()
	apiKey := os.Getenv("SWITCHBOARD_API_KEY")
	if apiKey == "" || *llmID == "" || *channels < 1 || *sessionTurns < 1 {
		fmt.Fprintln(os.Stderr, "set SWITCHBOARD_API_KEY and -llm; -channels and -session-turns >= 1")
		os.Exit(2)
	}
	options := []grpc.DialOption{grpc.WithInsecure()}
	if *window > 0 {
		options = append(options, grpc.WithInitialWindowSize(int32(*window)),
			grpc.WithInitialConnWindowSize(int32(*window)))
	}
	clients := make([]*switchboard.Client, *channels)
	for i := range clients {
		c, err := switchboard.Dial(*target, apiKey, options...)
		if err != nil {
			fmt.Fprintf(os.Stderr, "connect to %s: %v\n", *target, err)
			os.Exit(1)
		}
		defer c.Close()
		clients[i] = c
	}
	cfg := config{llmID: *llmID, prompt: *prompt, systemPrompt: *systemPrompt,
		sessions: *sessions, sessionTurns: *sessionTurns, deadline: *deadline}
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	say(out, "LOADGEN ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var cmd command
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil || cmd.Concurrency < 1 {
			fmt.Fprintf(os.Stderr, "bad command %q: %v\n", in.Text(), err)
			os.Exit(2)
		}
		res := closedLoop(cfg, clients, cmd, func(line string) { say(out, line) })
		payload, err := json.Marshal(res)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintf(out, "LOADGEN result %s\n", payload)
		out.Flush()
	}
}

func say(out *bufio.Writer, line string) {
	fmt.Fprintln(out, line)
	out.Flush()
}

func closedLoop(cfg config, clients []*switchboard.Client, cmd command, mark func(string)) result {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stop int32
	var wg sync.WaitGroup
	workers := make([]*worker, cmd.Concurrency)
	for i := range workers {
		w := &worker{cfg: cfg, client: clients[i%len(clients)], request: switchboard.StatelessTurn(
			cfg.llmID, switchboard.User(cfg.prompt))}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for atomic.LoadInt32(&stop) == 0 {
				w.turns = append(w.turns, w.turn(ctx))
			}
		}()
		if cmd.Concurrency > 50 && i%50 == 49 {
			time.Sleep(10 * time.Millisecond) // ramp up a large fleet, as load.py does
		}
	}
	time.Sleep(seconds(cmd.WarmupS))
	var res result
	cpu0 := cpuSeconds()
	res.Started = now()
	mark("LOADGEN begin")
	time.Sleep(seconds(cmd.DurationS))
	res.Ended = now()
	res.CPUS = cpuSeconds() - cpu0
	mark("LOADGEN end")
	atomic.StoreInt32(&stop, 1)
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		cancel()
		<-drained
	}
	for _, w := range workers {
		res.TurnsRun += len(w.turns)
		res.SessionsCreated += w.sessionsCreated
		for _, t := range w.turns {
			if t.Start >= res.Started || t.End >= res.Started {
				res.Turns = append(res.Turns, t)
			}
		}
	}
	return res
}

type worker struct {
	cfg             config
	client          *switchboard.Client
	request         *pb.ConverseRequest
	sessionID       string
	sessionTurns    int
	sessionsCreated int
	turns           []turn
}

// ensureSession replaces the worker's session after cfg.sessionTurns turns (untimed).
func (w *worker) ensureSession(ctx context.Context) error {
	if w.sessionID != "" && w.sessionTurns < w.cfg.sessionTurns {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.deadline)
	defer cancel()
	if w.sessionID != "" {
		if err := w.client.EndSession(ctx, w.sessionID); err != nil {
			return err
		}
		w.sessionID = ""
	}
	session, err := w.client.CreateSession(ctx, &pb.CreateSessionRequest{
		LlmId: w.cfg.llmID, SystemPrompt: w.cfg.systemPrompt})
	if err != nil {
		return err
	}
	w.sessionsCreated++
	w.sessionID, w.sessionTurns = session.GetId(), 0
	w.request = switchboard.SessionTurn(w.sessionID, switchboard.User(w.cfg.prompt))
	return nil
}

// turn runs one Converse call, reading the stream as the Python driver does: the arrival of
// every text delta, and whether a finished event said the answer is complete.
func (w *worker) turn(ctx context.Context) turn {
	if w.cfg.sessions {
		if err := w.ensureSession(ctx); err != nil {
			return turn{Start: now(), Error: "session " + codeName(err)}
		}
		w.sessionTurns++
	}
	t := turn{Start: now(), Marks: make([]float64, 0, 24)}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.deadline)
	defer cancel()
	complete := false
	stream, err := w.client.Conversations.Converse(ctx, w.request)
	for err == nil {
		var response *pb.ConverseResponse
		if response, err = stream.Recv(); err != nil {
			break
		}
		switch e := response.GetEvent().(type) {
		case *pb.ConverseResponse_Text:
			t.Marks = append(t.Marks, now())
			t.Bytes += len(e.Text.GetDelta())
		case *pb.ConverseResponse_Finished:
			complete = e.Finished.GetComplete()
		}
	}
	if !errors.Is(err, io.EOF) {
		t.Error = codeName(err)
	} else if !complete {
		t.Error = "incomplete"
	}
	t.End = now()
	if len(t.Marks) > 0 {
		t.First = t.Marks[0]
	}
	return t
}

// codeName spells a status code as the Python client does (grpc.StatusCode names).
func codeName(err error) string {
	if name, ok := codeNames[status.Code(err)]; ok {
		return name
	}
	return status.Code(err).String()
}

var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
	codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
	codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
	codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED",
	codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS",
	codes.Unauthenticated: "UNAUTHENTICATED",
}

// cpuSeconds is this process's user + system CPU time, all threads (getrusage RUSAGE_SELF).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
