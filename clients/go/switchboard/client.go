package switchboard

import (
	"context"
	"errors"
	"io"
	"math"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/switchboard/switchboard/clients/go/switchboardv1"
)

// ErrNoFinished is returned by Converse when the stream closed cleanly without a finished
// event: a truncated answer is never a success.
var ErrNoFinished = errors.New("switchboard: the Converse stream ended without a finished event")

// APIKey sends a Switchboard API key as `authorization: Bearer <key>` metadata on every call
// (grpc.WithPerRPCCredentials). Set RequireTLS against a TLS endpoint, so that grpc-go refuses
// to send the key over a plaintext connection. It never prints the key.
type APIKey struct {
	Key        string
	RequireTLS bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (k APIKey) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + k.Key}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (k APIKey) RequireTransportSecurity() bool { return k.RequireTLS }

// String hides the key (fmt's %v and %s).
func (k APIKey) String() string { return "switchboard.APIKey{Key: <redacted>}" }

// GoString hides the key (fmt's %#v).
func (k APIKey) GoString() string { return k.String() }

// Client is a connection to Switchboard with the generated stubs and helpers for the calls a
// conversation needs. Registry and Conversations are the generated stubs for everything else.
type Client struct {
	Registry      pb.LlmRegistryClient
	Conversations pb.ConversationsClient
	conn          *grpc.ClientConn // nil when the caller owns the connection (NewClient)
}

// Dial connects to target and sends apiKey on every call. The options must say how to secure
// the transport: grpc.WithInsecure() for a local plaintext server, or
// grpc.WithTransportCredentials(credentials.NewTLS(...)) (then prefer NewClient over a
// connection dialled with APIKey{Key: key, RequireTLS: true}). Like grpc.Dial without
// WithBlock, it connects lazily on the first call.
func Dial(target, apiKey string, opts ...grpc.DialOption) (*Client, error) {
	opts = append(opts, grpc.WithPerRPCCredentials(APIKey{Key: apiKey}))
	conn, err := grpc.Dial(target, opts...)
	if err != nil {
		return nil, err
	}
	client := NewClient(conn)
	client.conn = conn
	return client, nil
}

// NewClient uses a connection the caller dialled (with the API key as per-RPC credentials,
// see APIKey) and closes itself.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{
		Registry:      pb.NewLlmRegistryClient(conn),
		Conversations: pb.NewConversationsClient(conn),
	}
}

// Close closes the connection Dial opened; it does nothing for a NewClient.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// User is a user message with one text part.
func User(text string) *pb.Message {
	return &pb.Message{Role: pb.Role_ROLE_USER,
		Parts: []*pb.ContentPart{{Kind: &pb.ContentPart_Text{Text: text}}}}
}

// SessionTurn is the request of a turn on a session: messages holds only the new turn.
func SessionTurn(sessionID string, messages ...*pb.Message) *pb.ConverseRequest {
	return &pb.ConverseRequest{Target: &pb.ConverseRequest_SessionId{SessionId: sessionID},
		Messages: messages}
}

// StatelessTurn is the request of a turn on an LLM: messages holds the whole conversation.
func StatelessTurn(llmID string, messages ...*pb.Message) *pb.ConverseRequest {
	return &pb.ConverseRequest{Target: &pb.ConverseRequest_LlmId{LlmId: llmID},
		Messages: messages}
}

// ConverseOption changes how Converse runs a turn.
type ConverseOption func(*converseSettings)

type converseSettings struct {
	bargeIn bool
	onEvent func(*pb.ConverseResponse)
}

// BargeIn sets ConverseRequest.barge_in: when the session has a turn in flight (on any
// replica), the server cancels it first (recording its answer so far as interrupted) instead
// of failing the new turn with ABORTED `SESSION_BUSY`.
func BargeIn() ConverseOption {
	return func(s *converseSettings) { s.bargeIn = true }
}

// OnEvent calls f with each event as it arrives, after Reply.Apply, on the goroutine that
// called Converse: a voice client plays text deltas from here. To stop the turn (the user
// started talking), cancel the context given to Converse.
func OnEvent(f func(*pb.ConverseResponse)) ConverseOption {
	return func(s *converseSettings) { s.onEvent = f }
}

// Converse runs one turn and returns its assembled Reply (failovers applied). The Reply is
// never nil: when the call fails (the context was cancelled, the server interrupted the turn
// for a barge-in, an error status) it holds what arrived before, TurnID included, so a caller
// can TruncateTurn what the user heard. The error is the call's gRPC status error, or
// ErrNoFinished. Converse does not change req.
func (c *Client) Converse(ctx context.Context, req *pb.ConverseRequest,
	opts ...ConverseOption) (*Reply, error) {
	var settings converseSettings
	for _, opt := range opts {
		opt(&settings)
	}
	if settings.bargeIn && !req.GetBargeIn() {
		req = proto.Clone(req).(*pb.ConverseRequest)
		req.BargeIn = true
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the RPC if Converse returns before the server closed the stream
	reply := &Reply{}
	stream, err := c.Conversations.Converse(ctx, req)
	if err != nil {
		return reply, err
	}
	for {
		response, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return reply, err
		}
		reply.Apply(response)
		if settings.onEvent != nil {
			settings.onEvent(response)
		}
	}
	if reply.Finished == nil {
		return reply, ErrNoFinished
	}
	return reply, nil
}

// CreateSession opens a session and returns it.
func (c *Client) CreateSession(ctx context.Context, req *pb.CreateSessionRequest) (*pb.Session,
	error) {
	response, err := c.Conversations.CreateSession(ctx, req)
	return response.GetSession(), err
}

// GetSession returns a session with its history.
func (c *Client) GetSession(ctx context.Context, sessionID string) (*pb.Session, error) {
	response, err := c.Conversations.GetSession(ctx, &pb.GetSessionRequest{SessionId: sessionID})
	return response.GetSession(), err
}

// EndSession ends a session and forgets its history.
func (c *Client) EndSession(ctx context.Context, sessionID string) error {
	_, err := c.Conversations.EndSession(ctx, &pb.EndSessionRequest{SessionId: sessionID})
	return err
}

// UpdateSession replaces the fields of the session named by paths (`system_prompt`,
// `generation`, `idle_ttl`, `messages`) with those of session, for example to trim the
// history, and returns the session as stored now.
func (c *Client) UpdateSession(ctx context.Context, sessionID string, session *pb.Session,
	paths ...string) (*pb.Session, error) {
	response, err := c.Conversations.UpdateSession(ctx, &pb.UpdateSessionRequest{
		SessionId: sessionID, Session: session, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
	return response.GetSession(), err
}

// TruncateTurn keeps only the first heardTextChars characters (Unicode code points:
// utf8.RuneCountInString of what was played) of a turn's stored answer and marks it
// interrupted: what the user heard before barging in. It works on a finished turn and on a
// cancelled one (it waits for the cancelled turn's history write) and is idempotent. A count
// past the answer's length keeps it whole. Returns the session with its history.
func (c *Client) TruncateTurn(ctx context.Context, sessionID, turnID string,
	heardTextChars int) (*pb.Session, error) {
	heard := int32(math.MaxInt32)
	if heardTextChars < math.MaxInt32 {
		heard = int32(heardTextChars) // a negative count fails with INVALID_ARGUMENT
	}
	response, err := c.Conversations.TruncateTurn(ctx, &pb.TruncateTurnRequest{
		SessionId: sessionID, TurnId: turnID, HeardTextChars: heard})
	return response.GetSession(), err
}

// ErrorInfo is the google.rpc.ErrorInfo of a failed call (its Reason, such as SESSION_BUSY,
// and Metadata, such as running_turn_id), or nil when err carries none.
func ErrorInfo(err error) *errdetails.ErrorInfo {
	s, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, detail := range s.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}
