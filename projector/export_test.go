package projector

// LoseDeliveries makes p drop the deliveries lose picks, as a network or an
// overrun client would, before p sees them.
func LoseDeliveries(p *Projector, lose func(seq uint64) bool) { p.lose = lose }
