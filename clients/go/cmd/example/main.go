// Command example opens a session on a registered LLM and streams one Converse turn,
// printing the model's reasoning apart from its text.
//
//	SWITCHBOARD_API_KEY=... example -target 127.0.0.1:50051 -llm llm_... -prompt "Hi!"
//
// Events are printed as they arrive: one line per started/route/failover/usage/finished event,
// and reasoning and text deltas inline under a "[reasoning <id>]" or "[text <id>]" header.
// At the end the assembled reply (failovers applied) is printed as `reasoning: "<json>"` and
// `text: "<json>"`. A turn that fails exits 1 with the gRPC status on stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/switchboard/switchboard/clients/go/switchboard"
	pb "github.com/switchboard/switchboard/clients/go/switchboardv1"
)

func main() {
	target := flag.String("target", envOr("SWITCHBOARD_TARGET", "127.0.0.1:50051"), "server address")
	llmID := flag.String("llm", os.Getenv("SWITCHBOARD_LLM_ID"), "the LLM id")
	prompt := flag.String("prompt", "Hi!", "the user message")
	systemPrompt := flag.String("system", "Be brief.", "the session's system prompt")
	timeout := flag.Duration("timeout", 60*time.Second, "deadline for the whole run")
	flag.Parse()
	apiKey := os.Getenv("SWITCHBOARD_API_KEY")
	if apiKey == "" || *llmID == "" {
		fmt.Fprintln(os.Stderr, "set SWITCHBOARD_API_KEY and -llm (or SWITCHBOARD_LLM_ID)")
		os.Exit(2)
	}
	if err := run(*target, apiKey, *llmID, *systemPrompt, *prompt, *timeout); err != nil {
		if s, ok := status.FromError(err); ok {
			fmt.Fprintf(os.Stderr, "error: %s: %s\n", s.Code(), s.Message())
		} else {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
		}
		os.Exit(1)
	}
}

func run(target, apiKey, llmID, systemPrompt, prompt string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Plaintext, for a local server; use grpc.WithTransportCredentials(credentials.NewTLS(...))
	// against a TLS endpoint.
	conn, err := grpc.DialContext(ctx, target, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		return fmt.Errorf("connect to %s: %w", target, err)
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+apiKey)
	conversations := pb.NewConversationsClient(conn)

	created, err := conversations.CreateSession(ctx, &pb.CreateSessionRequest{
		LlmId: llmID, SystemPrompt: systemPrompt})
	if err != nil {
		return err
	}
	session := created.GetSession()
	fmt.Printf("[session] id=%s llm=%s\n", session.GetId(), session.GetLlmId())

	stream, err := conversations.Converse(ctx, &pb.ConverseRequest{
		Target: &pb.ConverseRequest_SessionId{SessionId: session.GetId()},
		Messages: []*pb.Message{{
			Role:  pb.Role_ROLE_USER,
			Parts: []*pb.ContentPart{{Kind: &pb.ContentPart_Text{Text: prompt}}},
		}},
	})
	if err != nil {
		return err
	}
	var reply switchboard.Reply
	printer := eventPrinter{}
	for {
		response, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		reply.Apply(response)
		printer.print(response)
	}
	if reply.Finished == nil {
		return errors.New("the stream ended without a finished event")
	}
	fmt.Printf("reasoning: %s\ntext: %s\n", quote(reply.Reasoning()), quote(reply.Text()))
	return nil
}

// eventPrinter writes events as they arrive; deltas of one message continue the same line.
type eventPrinter struct {
	current string // the "[kind id]" header of the message being streamed, if any
}

func (p *eventPrinter) print(response *pb.ConverseResponse) {
	switch e := response.GetEvent().(type) {
	case *pb.ConverseResponse_Reasoning:
		p.delta("[reasoning "+e.Reasoning.GetReasoningId()+"]", e.Reasoning.GetDelta())
	case *pb.ConverseResponse_Text:
		p.delta("[text "+e.Text.GetMessageId()+"]", e.Text.GetDelta())
	case *pb.ConverseResponse_Started:
		p.line("[started] turn=%s", e.Started.GetTurnId())
	case *pb.ConverseResponse_Route:
		r := e.Route
		p.line("[route] endpoint=%s label=%s model=%s reason=%s attempt=%d", r.GetEndpointId(),
			r.GetEndpointLabel(), r.GetModel(), r.GetReason(), r.GetAttempt())
	case *pb.ConverseResponse_ToolCall:
		c := e.ToolCall
		p.line("[tool_call %d] id=%s name=%s arguments+=%s", c.GetIndex(), c.GetId(), c.GetName(),
			quote(c.GetArgumentsDelta()))
	case *pb.ConverseResponse_Failover:
		f := e.Failover
		p.line("[failover] from=%s to=%s cause=%s discard=%v", f.GetFromEndpointId(),
			f.GetToEndpointId(), quote(f.GetCause()), f.GetDiscardMessageIds())
	case *pb.ConverseResponse_Usage:
		u := e.Usage
		p.line("[usage] input=%d output=%d reasoning=%d", u.GetInputTokens(), u.GetOutputTokens(),
			u.GetReasoningTokens())
	case *pb.ConverseResponse_Finished:
		f := e.Finished
		p.line("[finished] reason=%s complete=%t endpoint=%s model=%s attempts=%d ttft=%s",
			f.GetFinishReason(), f.GetComplete(), f.GetEndpointId(), f.GetModel(), f.GetAttempts(),
			f.GetTimeToFirstToken().AsDuration())
	}
}

func (p *eventPrinter) delta(header, text string) {
	if p.current != header {
		p.end()
		fmt.Print(header + " ")
		p.current = header
	}
	fmt.Print(text)
}

func (p *eventPrinter) line(format string, args ...interface{}) {
	p.end()
	fmt.Printf(format+"\n", args...)
}

func (p *eventPrinter) end() {
	if p.current != "" {
		fmt.Println()
		p.current = ""
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
