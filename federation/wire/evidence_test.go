package wire

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// fakeSource serves fixed bytes and counts the calls that reached it.
type fakeSource struct{ calls int }

func (f *fakeSource) ServeEvidence(_ context.Context, from, caseID, sha, holder string, w func(*pb.EvidenceBlob, []byte) error) error {
	f.calls++
	return w(&pb.EvidenceBlob{Sha256: sha}, []byte("bytes for "+from))
}

type fetchStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent []*pb.FetchEvidenceResponse
}

func (s *fetchStream) Context() context.Context { return s.ctx }
func (s *fetchStream) Send(m *pb.FetchEvidenceResponse) error {
	s.sent = append(s.sent, m)
	return nil
}

// FetchEvidence is authorized like every federation call: only the parent
// or a child, named by its certificate, and only for this node; nothing
// reaches the evidence source otherwise.
func TestFetchEvidenceAuthorizesLikeTheFederation(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	claims := func(name string) PeerIdentity { return func(context.Context) (string, error) { return name, nil } }
	for _, tc := range []struct {
		name     string
		identity PeerIdentity
		req      *pb.FetchEvidenceRequest
		want     codes.Code
	}{
		{"a sibling district", nil, &pb.FetchEvidenceRequest{From: "d2", To: "d1", CaseId: "c", Sha256: sha}, codes.PermissionDenied},
		{"certificate names another node", claims("s1"), &pb.FetchEvidenceRequest{From: "city", To: "d1", CaseId: "c", Sha256: sha}, codes.PermissionDenied},
		{"misrouted", nil, &pb.FetchEvidenceRequest{From: "city", To: "s1", CaseId: "c", Sha256: sha}, codes.InvalidArgument},
		{"not a sha256", nil, &pb.FetchEvidenceRequest{From: "city", To: "d1", CaseId: "c", Sha256: "../../etc"}, codes.InvalidArgument},
		{"no case", nil, &pb.FetchEvidenceRequest{From: "city", To: "d1", Sha256: sha}, codes.InvalidArgument},
		{"the parent", claims("city"), &pb.FetchEvidenceRequest{From: "city", To: "d1", CaseId: "c", Sha256: sha}, codes.OK},
		{"a child", nil, &pb.FetchEvidenceRequest{From: "s1", To: "d1", CaseId: "c", Sha256: sha}, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := testServer(t, tc.identity)
			src := &fakeSource{}
			s.SetEvidence(src)
			st := &fetchStream{ctx: context.Background()}
			err := s.FetchEvidence(tc.req, st)
			if status.Code(err) != tc.want {
				t.Fatalf("FetchEvidence: %v, want %s", err, tc.want)
			}
			if tc.want != codes.OK && src.calls != 0 {
				t.Fatal("a refused call reached the evidence source")
			}
			if tc.want == codes.OK && (len(st.sent) != 1 || st.sent[0].Blob.GetSha256() != sha || string(st.sent[0].Data) != "bytes for "+tc.req.From) {
				t.Fatalf("sent %v", st.sent)
			}
		})
	}
	s, _ := testServer(t, nil)
	if err := s.FetchEvidence(&pb.FetchEvidenceRequest{From: "city", To: "d1", CaseId: "c", Sha256: sha}, &fetchStream{ctx: context.Background()}); status.Code(err) != codes.Unimplemented {
		t.Errorf("without a source: %v", err)
	}
}
