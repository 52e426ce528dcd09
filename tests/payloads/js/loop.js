// Hostile codec: never returns.
function decodeUplink(input) {
  for (;;) {}
}
