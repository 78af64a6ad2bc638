// The grid tree of the user's scope (GET /api/grid) as the filters and reports use it.

export class GridIndex {
  constructor(tree) {
    this.tree = tree;
    this.nodes = [];          // depth-first, for indented <select> options
    this.cellsUnder = new Map();
    this.names = new Map();
    this.cameraCell = new Map();
    if (tree) this.walk(tree, 0);
  }

  walk(node, depth) {
    this.nodes.push({id: node.id, name: node.name, level: node.level, depth});
    this.names.set(node.id, node.name);
    let cells = [];
    if (node.level === "cell") {
      cells = [node.id];
      for (const camera of node.cameras || []) this.cameraCell.set(camera, node.id);
    }
    for (const child of node.children || []) cells = cells.concat(this.walk(child, depth + 1));
    this.cellsUnder.set(node.id, new Set(cells));
    return cells;
  }

  name(id) { return this.names.get(id) || id || "outside the grid"; }

  /** Whether the cell is the node or below it; everything is under the root. */
  contains(nodeId, cell) {
    if (!nodeId) return true;
    if (this.tree && nodeId === this.tree.id) return true;
    const cells = this.cellsUnder.get(nodeId);
    return Boolean(cells && cells.has(cell));
  }
}
