package podres

// DecodeList exposes decodeList to the external tests.
var DecodeList = decodeList
