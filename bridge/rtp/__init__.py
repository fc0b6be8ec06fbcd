"""Sans-I/O RTP/RTCP (RFC 3550) and telephone-events (RFC 4733): packets and stream state."""
