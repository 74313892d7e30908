package handlers

import (
	"io"
	"mime/multipart"
)

// multipartPart is one streamed part of a multipart body (the upload is
// read from the network as it is stored, never parsed into memory or temp
// files the way ParseMultipartForm would).
type multipartPart struct{ *multipart.Part }

func newMultipartReader(r io.Reader, boundary string) *multipart.Reader {
	return multipart.NewReader(r, boundary)
}
