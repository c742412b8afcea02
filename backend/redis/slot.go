package redis

// Redis Cluster hash slots, computed locally so that a batch whose keys
// span slots is refused before anything is sent.

import "strings"

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// hashSlot returns the cluster hash slot of a Redis key: CRC16 (XMODEM) of
// the key, or of its hash tag (the text between the first "{" and the next
// "}", when not empty), modulo 16384.
func hashSlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % clusterSlots)
}

// sameSlot reports whether every key hashes to the same cluster slot.
func sameSlot(keys []string) bool {
	for i := 1; i < len(keys); i++ {
		if hashSlot(keys[i]) != hashSlot(keys[0]) {
			return false
		}
	}
	return true
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the
// checksum Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
