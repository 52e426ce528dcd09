// Hostile codec: throws on every frame.
function decodeUplink(input) {
  throw new TypeError("cannot read property 'x' of undefined");
}
