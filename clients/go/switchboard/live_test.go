package switchboard

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/switchboard/switchboard/clients/go/switchboardv1"
)

// TestLiveVoiceTurns runs a voice client's sequence against a real server:
// tests/integration/test_go_client.py starts one, registers SWITCHBOARD_LIVE_LLM_ID on a
// simulator that answers liveWords and holds its first two streams open after "one two",
// and passes SWITCHBOARD_LIVE_TARGET and SWITCHBOARD_API_KEY. Skipped without them.
func TestLiveVoiceTurns(t *testing.T) {
	target, llmID := os.Getenv("SWITCHBOARD_LIVE_TARGET"), os.Getenv("SWITCHBOARD_LIVE_LLM_ID")
	if target == "" || llmID == "" {
		t.Skip("set SWITCHBOARD_LIVE_TARGET, SWITCHBOARD_LIVE_LLM_ID and SWITCHBOARD_API_KEY")
	}
	const liveWords = "one two three four five six seven eight"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := Dial(target, os.Getenv("SWITCHBOARD_API_KEY"), grpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	session, err := client.CreateSession(ctx, &pb.CreateSessionRequest{LlmId: llmID})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("session=%s\n", session.GetId())

	// Turn A streams "one two" and stalls; turn B barges in, which interrupts A.
	type result struct {
		reply *Reply
		err   error
	}
	heardA, doneA := make(chan struct{}), make(chan result, 1)
	go func() {
		var text strings.Builder
		reply, err := client.Converse(ctx, SessionTurn(session.GetId(), User("Count.")),
			OnEvent(func(e *pb.ConverseResponse) {
				if e.GetText() == nil {
					return
				}
				text.WriteString(e.GetText().GetDelta())
				if text.String() == "one two" { // deltas may coalesce; the stall follows "two"
					close(heardA)
				}
			}))
		doneA <- result{reply, err}
	}()
	select {
	case <-heardA:
	case a := <-doneA:
		t.Fatalf("turn A ended before the barge-in: %q, %v", a.reply.Text(), a.err)
	}

	// Turn B (barge_in) streams "one two" and stalls too; the user talks again: cancel it.
	ctxB, cancelB := context.WithCancel(ctx)
	defer cancelB()
	var textB strings.Builder
	replyB, err := client.Converse(ctxB, SessionTurn(session.GetId(), User("Wait.")), BargeIn(),
		OnEvent(func(e *pb.ConverseResponse) {
			if e.GetText() == nil {
				return
			}
			textB.WriteString(e.GetText().GetDelta())
			if textB.String() == "one two" {
				cancelB()
			}
		}))
	if status.Code(err) != codes.Canceled || replyB.Text() != "one two" || replyB.TurnID == "" {
		t.Fatalf("turn B: %q %q, %v", replyB.TurnID, replyB.Text(), err)
	}
	a := <-doneA
	if status.Code(a.err) != codes.Aborted || ErrorInfo(a.err).GetReason() != "TURN_INTERRUPTED" {
		t.Fatalf("turn A ended with %v, want ABORTED TURN_INTERRUPTED", a.err)
	}
	if a.reply.Text() != "one two" || a.reply.TurnID == "" {
		t.Fatalf("turn A: %q %q", a.reply.TurnID, a.reply.Text())
	}
	// Heard all of what B streamed: TruncateTurn waits for the cancelled turn's history write.
	afterB, err := client.TruncateTurn(ctx, session.GetId(), replyB.TurnID, len("one two"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"user Count.", "assistant one two (interrupted)", "user Wait.",
		"assistant one two (interrupted)"}
	if got := history(afterB); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history after B: %q, want %q", got, want)
	}

	// Turn C finishes; the user heard only "one two th" of it before talking.
	replyC, err := client.Converse(ctx, SessionTurn(session.GetId(), User("Again.")))
	if err != nil || replyC.Text() != liveWords || !replyC.Complete() {
		t.Fatalf("turn C: %q, complete %v, %v", replyC.Text(), replyC.Complete(), err)
	}
	if _, err := client.TruncateTurn(ctx, session.GetId(), replyC.TurnID, len("one two th")); err != nil {
		t.Fatal(err)
	}
	stored, err := client.GetSession(ctx, session.GetId())
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, "user Again.", "assistant one two th (interrupted)")
	if got := history(stored); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stored history: %q, want %q", got, want)
	}
	if last := stored.GetMessages()[len(stored.GetMessages())-1]; last.GetTurnId() != replyC.TurnID {
		t.Fatalf("last message of turn %q, want %q", last.GetTurnId(), replyC.TurnID)
	}

	// UpdateSession: a new system prompt, the history trimmed to turn C.
	trimmed := &pb.Session{SystemPrompt: "Be brief.", Messages: stored.GetMessages()[4:]}
	updated, err := client.UpdateSession(ctx, session.GetId(), trimmed, "system_prompt", "messages")
	if err != nil {
		t.Fatal(err)
	}
	if got := history(updated); updated.GetSystemPrompt() != "Be brief." ||
		fmt.Sprint(got) != fmt.Sprint(want[4:]) {
		t.Fatalf("updated: %q %q", updated.GetSystemPrompt(), got)
	}
}

// history is "role text" per message, with " (interrupted)" on interrupted ones.
func history(session *pb.Session) []string {
	out := make([]string, 0, len(session.GetMessages()))
	for _, m := range session.GetMessages() {
		var text strings.Builder
		for _, part := range m.GetParts() {
			text.WriteString(part.GetText())
		}
		role := strings.ToLower(strings.TrimPrefix(m.GetRole().String(), "ROLE_"))
		line := role + " " + text.String()
		if m.GetInterrupted() {
			line += " (interrupted)"
		}
		out = append(out, line)
	}
	return out
}
