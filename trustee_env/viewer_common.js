  // Shared by both viewer pages (viewer_common.js, inserted by viewer_html.page_parts before hashing).
  async function inflate(b64) {  // base64 of a gzip member -> its text
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text();
  }
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {  // text goes in as textContent only: nothing from the data is parsed as HTML
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
