export declare const LAYER_IMPORTS: Record<string, readonly string[]>;
export declare const BROWSER_LAYERS: readonly string[];
export declare const ALIASES: Record<string, string>;
export declare function resolveAliases(root: string): Record<string, string>;
