package server

import (
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/store"
)

// backupChunk is the most snapshot bytes in one BackupResponse: well under the 4 MiB a gRPC
// client accepts by default.
const backupChunk = 1 << 20

// Backup streams a consistent snapshot of the store in chunks. The snapshot is first copied to
// a local file (fast, and it blocks no writer), then sent from there, so a slow client never
// holds a read transaction open. Backup is not audited: it changes nothing.
func (h *handler) Backup(_ *erasurev1.BackupRequest, stream erasurev1.ErasureService_BackupServer) error {
	if !h.backup.TryLock() {
		return statusError(codes.Unavailable, "another backup is running; try again when it ends", "BACKUP_RUNNING", nil)
	}
	defer h.backup.Unlock()
	err := h.svc.Backup(func(snap store.Snapshot) error {
		buf := make([]byte, backupChunk)
		for sent := int64(0); sent < snap.Size; {
			n, err := io.ReadFull(snap.Data, buf[:min(int64(len(buf)), snap.Size-sent)])
			if err != nil {
				h.srv.opts.Logger.ErrorContext(stream.Context(), "backup: reading the snapshot copy failed", "err", err)
				return statusError(codes.Unavailable, "storage failure while reading the snapshot; try again later", "STORAGE_FAILURE", nil)
			}
			msg := &erasurev1.BackupResponse{Data: buf[:n]} // Send encodes it before returning, so buf can be reused
			if sent == 0 {
				msg.Revision, msg.Size = int64(snap.Rev), snap.Size
			}
			if err := stream.Send(msg); err != nil {
				return err // the client went away or the call was cancelled
			}
			sent += int64(n)
		}
		return nil
	})
	if _, ok := status.FromError(err); ok {
		return err
	}
	return toStatus(err)
}
