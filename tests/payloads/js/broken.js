// A codec that does not even parse.
function decodeUplink(input) {
  return { data: {
}
