package jobs

// PauseHeartbeat stops s's heartbeat and leaves its row to age, as a
// replica that was killed or cut off from the database would: its jobs go
// on running here.
func (s *Service) PauseHeartbeat() {
	s.live.stopBeat()
	<-s.live.beatDone
	s.live.stopBeat = nil
}

// ReplicaID is s's id among the replicas ("" unless they share Postgres).
func (s *Service) ReplicaID() string {
	if s.live == nil {
		return ""
	}
	return s.live.id
}
