package switchboard

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/switchboard/switchboard/clients/go/switchboardv1"
)

// conversations is a real gRPC server on loopback that records what it was sent.
type conversations struct {
	pb.UnimplementedConversationsServer
	converse func(*pb.ConverseRequest, pb.Conversations_ConverseServer) error

	mu            sync.Mutex
	authorization []string
	converses     []*pb.ConverseRequest
	truncates     []*pb.TruncateTurnRequest
	updates       []*pb.UpdateSessionRequest
}

func (s *conversations) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authorization = append(s.authorization, strings.Join(md.Get("authorization"), ","))
}

func (s *conversations) Converse(req *pb.ConverseRequest, stream pb.Conversations_ConverseServer,
) error {
	s.record(stream.Context())
	s.mu.Lock()
	s.converses = append(s.converses, req)
	s.mu.Unlock()
	return s.converse(req, stream)
}

func (s *conversations) TruncateTurn(ctx context.Context, req *pb.TruncateTurnRequest,
) (*pb.TruncateTurnResponse, error) {
	s.record(ctx)
	s.mu.Lock()
	s.truncates = append(s.truncates, req)
	s.mu.Unlock()
	return &pb.TruncateTurnResponse{Session: &pb.Session{Id: req.GetSessionId()}}, nil
}

func (s *conversations) UpdateSession(ctx context.Context, req *pb.UpdateSessionRequest,
) (*pb.UpdateSessionResponse, error) {
	s.record(ctx)
	s.mu.Lock()
	s.updates = append(s.updates, req)
	s.mu.Unlock()
	return &pb.UpdateSessionResponse{Session: req.GetSession()}, nil
}

func (s *conversations) GetSession(ctx context.Context, req *pb.GetSessionRequest,
) (*pb.GetSessionResponse, error) {
	s.record(ctx)
	busy, _ := status.New(codes.Aborted, "a turn is running").WithDetails(&errdetails.ErrorInfo{
		Reason: "SESSION_BUSY", Domain: "switchboard.dev",
		Metadata: map[string]string{"running_turn_id": "turn_1"}})
	return nil, busy.Err()
}

func serve(t *testing.T, s *conversations) *Client {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	pb.RegisterConversationsServer(server, s)
	go func() { _ = server.Serve(listener) }()
	client, err := Dial(listener.Addr().String(), "sk-test-key", grpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.Close()
		server.Stop()
	})
	return client
}

func started(turnID string) *pb.ConverseResponse {
	return &pb.ConverseResponse{Event: &pb.ConverseResponse_Started{
		Started: &pb.TurnStarted{TurnId: turnID}}}
}

func finished() *pb.ConverseResponse {
	return &pb.ConverseResponse{Event: &pb.ConverseResponse_Finished{
		Finished: &pb.TurnFinished{Complete: true, EndpointId: "ep_1"}}}
}

func sendAll(stream pb.Conversations_ConverseServer, events ...*pb.ConverseResponse) error {
	for _, event := range events {
		if err := stream.Send(event); err != nil {
			return err
		}
	}
	return nil
}

func TestConverseAssemblesTheReplyAndSendsTheKeyOnEveryCall(t *testing.T) {
	server := &conversations{converse: func(_ *pb.ConverseRequest,
		stream pb.Conversations_ConverseServer) error {
		return sendAll(stream, started("turn_1"), text("m1", "Hello"), text("m1", " there."),
			finished())
	}}
	client := serve(t, server)
	var seen []string
	reply, err := client.Converse(context.Background(), SessionTurn("ses_1", User("Hi!")),
		OnEvent(func(e *pb.ConverseResponse) { seen = append(seen, fmt.Sprintf("%T", e.GetEvent())) }))
	if err != nil {
		t.Fatal(err)
	}
	if reply.TurnID != "turn_1" || reply.Text() != "Hello there." || !reply.Complete() {
		t.Fatalf("reply = %q %q %v", reply.TurnID, reply.Text(), reply.Complete())
	}
	if len(seen) != 4 || seen[0] != "*switchboardv1.ConverseResponse_Started" {
		t.Fatalf("OnEvent saw %v", seen)
	}
	sent := server.converses[0]
	if sent.GetSessionId() != "ses_1" || sent.GetMessages()[0].GetParts()[0].GetText() != "Hi!" ||
		sent.GetMessages()[0].GetRole() != pb.Role_ROLE_USER || sent.GetBargeIn() {
		t.Fatalf("sent %v", sent)
	}
	if _, err := client.TruncateTurn(context.Background(), "ses_1", "turn_1", 3); err != nil {
		t.Fatal(err)
	}
	want := []string{"Bearer sk-test-key", "Bearer sk-test-key"}
	if fmt.Sprint(server.authorization) != fmt.Sprint(want) {
		t.Fatalf("authorization = %v", server.authorization)
	}
}

func TestBargeInSetsTheFlagWithoutChangingTheCallersRequest(t *testing.T) {
	server := &conversations{converse: func(_ *pb.ConverseRequest,
		stream pb.Conversations_ConverseServer) error {
		return sendAll(stream, started("turn_2"), finished())
	}}
	client := serve(t, server)
	req := SessionTurn("ses_1", User("Wait."))
	if _, err := client.Converse(context.Background(), req, BargeIn()); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Converse(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if !server.converses[0].GetBargeIn() || server.converses[1].GetBargeIn() || req.GetBargeIn() {
		t.Fatalf("barge_in sent %v then %v; caller's request %v", server.converses[0].GetBargeIn(),
			server.converses[1].GetBargeIn(), req.GetBargeIn())
	}
}

func TestAFailedTurnReturnsTheReplySoFarWithTheStatus(t *testing.T) {
	server := &conversations{converse: func(_ *pb.ConverseRequest,
		stream pb.Conversations_ConverseServer) error {
		if err := sendAll(stream, started("turn_3"), text("m1", "one two")); err != nil {
			return err
		}
		return status.Error(codes.Aborted, "interrupted by a barge-in")
	}}
	client := serve(t, server)
	reply, err := client.Converse(context.Background(), SessionTurn("ses_1", User("Count.")))
	if status.Code(err) != codes.Aborted {
		t.Fatalf("err = %v", err)
	}
	if reply.TurnID != "turn_3" || reply.Text() != "one two" || reply.Finished != nil {
		t.Fatalf("reply = %q %q %v", reply.TurnID, reply.Text(), reply.Finished)
	}
}

func TestCancellingFromOnEventStopsTheTurn(t *testing.T) {
	release := make(chan struct{})
	server := &conversations{converse: func(_ *pb.ConverseRequest,
		stream pb.Conversations_ConverseServer) error {
		if err := sendAll(stream, started("turn_4"), text("m1", "one")); err != nil {
			return err
		}
		<-stream.Context().Done() // the caller's cancellation reaches the server
		close(release)
		return stream.Context().Err()
	}}
	client := serve(t, server)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reply, err := client.Converse(ctx, SessionTurn("ses_1", User("Count.")),
		OnEvent(func(e *pb.ConverseResponse) {
			if e.GetText() != nil {
				cancel() // the user started talking
			}
		}))
	if status.Code(err) != codes.Canceled {
		t.Fatalf("err = %v", err)
	}
	<-release
	if reply.TurnID != "turn_4" || reply.Text() != "one" {
		t.Fatalf("reply = %q %q", reply.TurnID, reply.Text())
	}
}

func TestAStreamWithoutFinishedIsNotASuccess(t *testing.T) {
	server := &conversations{converse: func(_ *pb.ConverseRequest,
		stream pb.Conversations_ConverseServer) error {
		return sendAll(stream, started("turn_5"), text("m1", "half"))
	}}
	client := serve(t, server)
	reply, err := client.Converse(context.Background(), StatelessTurn("llm_1", User("Hi")))
	if !errors.Is(err, ErrNoFinished) || reply.Text() != "half" {
		t.Fatalf("err = %v, text %q", err, reply.Text())
	}
	if server.converses[0].GetLlmId() != "llm_1" {
		t.Fatalf("sent %v", server.converses[0])
	}
}

func TestTruncateTurnAndUpdateSessionSendTheirFields(t *testing.T) {
	server := &conversations{}
	client := serve(t, server)
	ctx := context.Background()
	session, err := client.TruncateTurn(ctx, "ses_1", "turn_1", 10)
	if err != nil || session.GetId() != "ses_1" {
		t.Fatalf("session %v, err %v", session, err)
	}
	if _, err := client.TruncateTurn(ctx, "ses_1", "turn_1", math.MaxInt32+10); err != nil {
		t.Fatal(err)
	}
	got := server.truncates
	if got[0].GetTurnId() != "turn_1" || got[0].GetHeardTextChars() != 10 ||
		got[1].GetHeardTextChars() != math.MaxInt32 {
		t.Fatalf("sent %v", got)
	}
	updated, err := client.UpdateSession(ctx, "ses_1", &pb.Session{SystemPrompt: "New."},
		"system_prompt", "messages")
	if err != nil || updated.GetSystemPrompt() != "New." {
		t.Fatalf("session %v, err %v", updated, err)
	}
	sent := server.updates[0]
	if sent.GetSessionId() != "ses_1" ||
		fmt.Sprint(sent.GetUpdateMask().GetPaths()) != "[system_prompt messages]" {
		t.Fatalf("sent %v", sent)
	}
}

func TestErrorInfoReadsTheReasonAndMetadata(t *testing.T) {
	client := serve(t, &conversations{})
	_, err := client.GetSession(context.Background(), "ses_1")
	info := ErrorInfo(err)
	if info.GetReason() != "SESSION_BUSY" || info.GetMetadata()["running_turn_id"] != "turn_1" {
		t.Fatalf("ErrorInfo(%v) = %v", err, info)
	}
	if ErrorInfo(errors.New("not a status")) != nil || ErrorInfo(nil) != nil {
		t.Fatal("ErrorInfo of a non-status error must be nil")
	}
}

func TestAPIKeyNeverPrintsTheKey(t *testing.T) {
	key := APIKey{Key: "sk-secret-value"}
	for _, format := range []string{"%v", "%s", "%+v", "%#v"} {
		if out := fmt.Sprintf(format, key); strings.Contains(out, "secret") {
			t.Fatalf("%s printed %q", format, out)
		}
	}
}
