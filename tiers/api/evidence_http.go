package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// registerEvidenceRoutes serves evidence over REST, outside the gateway so
// an upload streams: the body (raw bytes, or the "file" part of a
// multipart form) goes straight to the spool file, up to evidence.max_bytes
// (the route's own body limit, limits.go), never through a JSON decoder.
//
//	POST /v1/evidence/{case_id}?request_id=…&stage=handling&kind=after&file_name=…&note=…
//	GET  /v1/evidence/{case_id}            the case's evidence (JSON)
//	GET  /v1/evidence/{case_id}/{sha256}   the bytes
func registerEvidenceRoutes(mux *http.ServeMux, s *EvidenceServer) {
	mux.HandleFunc("POST /v1/evidence/{case_id}", s.httpUpload)
	mux.HandleFunc("GET /v1/evidence/{case_id}", s.httpList)
	mux.HandleFunc("GET /v1/evidence/{case_id}/{sha256}", s.httpGet)
}

// EvidenceRoute is the REST path prefix of evidence (its body limit is
// evidence.max_bytes, not limits.max_request_bytes).
const EvidenceRoute = "/v1/evidence/"

// parseEnum reads an enum from a query value: its full name
// (EVIDENCE_STAGE_HANDLING), its short name (handling) or its number.
func parseEnum(v, prefix string, names map[string]int32) (int32, bool) {
	if v == "" {
		return 0, true
	}
	if n, err := strconv.Atoi(v); err == nil {
		return int32(n), true
	}
	up := strings.ToUpper(v)
	if n, ok := names[up]; ok {
		return n, true
	}
	n, ok := names[prefix+up]
	return n, ok
}

func (s *EvidenceServer) httpUpload(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	h := &pb.UploadEvidenceHeader{
		CaseId: req.PathValue("case_id"), RequestId: q.Get("request_id"),
		FileName: q.Get("file_name"), Note: q.Get("note"),
	}
	if h.RequestId == "" {
		h.RequestId = req.Header.Get("Idempotency-Key")
	}
	stage, ok := parseEnum(q.Get("stage"), "EVIDENCE_STAGE_", pb.EvidenceStage_value)
	if !ok {
		writeError(w, status.Convert(toStatus(invalid("stage", "one of report, handling, check"))))
		return
	}
	kind, ok := parseEnum(q.Get("kind"), "EVIDENCE_KIND_", pb.EvidenceKind_value)
	if !ok {
		writeError(w, status.Convert(toStatus(invalid("kind", "one of before, after, other"))))
		return
	}
	h.Stage, h.Kind = pb.EvidenceStage(stage), pb.EvidenceKind(kind)
	if req.ContentLength > 0 {
		h.Size = req.ContentLength
	}
	var body io.Reader = req.Body
	if mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type")); mt == "multipart/form-data" {
		h.Size = 0 // the form's length is not the file's
		part, err := filePart(req)
		if err != nil {
			writeUploadError(w, s.bodyStatus(err))
			return
		}
		defer part.Close()
		if h.FileName == "" {
			h.FileName = part.FileName()
		}
		body = part
	}
	resp, err := s.upload(req.Context(), h, body)
	if err != nil {
		writeUploadError(w, err)
		return
	}
	code := http.StatusCreated
	if resp.Replayed {
		code = http.StatusOK
	}
	writeProto(w, code, resp)
}

// filePart finds the "file" part of a multipart upload.
func filePart(req *http.Request) (interface {
	io.ReadCloser
	FileName() string
}, error) {
	mr, err := req.MultipartReader()
	if err != nil {
		return nil, fieldStatus(codes.InvalidArgument, "file", err.Error())
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, fieldStatus(codes.InvalidArgument, "file", "the form has no part named file")
		}
		if err != nil {
			return nil, err
		}
		if p.FormName() == "file" {
			return p, nil
		}
		_ = p.Close()
	}
}

// writeUploadError answers a refused upload: 413 for too large, 415 for a
// type outside the allow-list, else the usual mapping; always a JSON body
// naming the field.
func writeUploadError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	code := httpStatus(st.Code())
	switch {
	case st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "evidence.max_bytes"):
		code = http.StatusRequestEntityTooLarge
		w.Header().Set("Connection", "close")
	case st.Code() == codes.InvalidArgument && strings.HasPrefix(st.Message(), "content_type:"):
		code = http.StatusUnsupportedMediaType
	}
	writeErrorCode(w, st, code)
}

func (s *EvidenceServer) httpList(w http.ResponseWriter, req *http.Request) {
	resp, err := s.ListEvidence(req.Context(), &pb.ListEvidenceRequest{CaseId: req.PathValue("case_id")})
	if err != nil {
		writeError(w, status.Convert(err))
		return
	}
	writeProto(w, http.StatusOK, resp)
}

func (s *EvidenceServer) httpGet(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	c, ref, err := s.readable(ctx, req.PathValue("case_id"), req.PathValue("sha256"))
	if err != nil {
		writeError(w, status.Convert(err))
		return
	}
	etag := `"` + ref.Sha256 + `"`
	if req.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	started := false
	err = s.stream(ctx, c, ref, func(b []byte) error {
		if !started {
			started = true
			hd := w.Header()
			hd.Set("Content-Type", ref.ContentType)
			hd.Set("Content-Length", strconv.FormatInt(ref.Size, 10))
			hd.Set("ETag", etag)
			hd.Set("Cache-Control", "private, max-age=31536000, immutable")
			hd.Set("X-Content-Type-Options", "nosniff")
			if ref.FileName != "" {
				hd.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": ref.FileName}))
			}
			w.WriteHeader(http.StatusOK)
		}
		_, err := w.Write(b)
		return err
	})
	if err != nil && !started {
		writeError(w, status.Convert(err))
	}
}

var protoJSON = protojson.MarshalOptions{UseProtoNames: true}

func writeProto(w http.ResponseWriter, code int, m proto.Message) {
	b, err := protoJSON.Marshal(m)
	if err != nil {
		writeError(w, status.New(codes.Internal, fmt.Sprintf("encode answer: %v", err)))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
