package evidence

import (
	"context"
	"errors"
	"fmt"
	"io"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// PieceBytes is the size of the data messages Upload sends (well under
// the server's gRPC message limit).
const PieceBytes = 256 << 10

// UploadStream sends r as an upload stream (the header, then pieces of
// PieceBytes) and returns the server's answer. cityhubctl and the tests
// use it.
func UploadStream(ctx context.Context, c pb.EvidenceServiceClient, h *pb.UploadEvidenceHeader, r io.Reader) (*pb.UploadEvidenceResponse, error) {
	st, err := c.Upload(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&pb.UploadEvidenceRequest{Part: &pb.UploadEvidenceRequest_Header{Header: h}}); err != nil {
		_, rerr := st.CloseAndRecv()
		return nil, errors.Join(err, rerr)
	}
	buf := make([]byte, PieceBytes)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := st.Send(&pb.UploadEvidenceRequest{Part: &pb.UploadEvidenceRequest_Data{Data: append([]byte(nil), buf[:n]...)}}); err != nil {
				// The server ended the stream (a refusal): its answer says why.
				_, err = st.CloseAndRecv()
				return nil, err
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("read upload: %w", rerr)
		}
	}
	return st.CloseAndRecv()
}

// Download writes evidence sha of case caseID to w and returns its
// reference.
func Download(ctx context.Context, c pb.EvidenceServiceClient, caseID, sha string, w io.Writer) (*pb.EvidenceRef, error) {
	st, err := c.GetEvidence(ctx, &pb.GetEvidenceRequest{CaseId: caseID, Sha256: sha})
	if err != nil {
		return nil, err
	}
	var ref *pb.EvidenceRef
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			if ref == nil {
				return nil, errors.New("the server sent no evidence")
			}
			return ref, nil
		}
		if err != nil {
			return nil, err
		}
		if ref == nil {
			ref = m.Evidence
		}
		if _, err := w.Write(m.Data); err != nil {
			return nil, err
		}
	}
}
