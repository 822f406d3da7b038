// Starts `cx lsp` (the CX language server, on stdio) for .cx files.
import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  TransportKind,
} from "vscode-languageclient/node";

let client: LanguageClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const configured = vscode.workspace
    .getConfiguration("cx")
    .get<string[]>("server.command", ["cx", "lsp"]);
  const [command, ...args] = configured.length > 0 ? configured : ["cx", "lsp"];
  const serverOptions: ServerOptions = {
    run: { command, args, transport: TransportKind.stdio },
    debug: { command, args, transport: TransportKind.stdio },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file", language: "cx" }, { scheme: "untitled", language: "cx" }],
  };
  client = new LanguageClient("cx", "CX language server", serverOptions, clientOptions);
  context.subscriptions.push(client);
  try {
    await client.start();
  } catch (error) {
    void vscode.window.showErrorMessage(
      `Could not start the CX language server (${[command, ...args].join(" ")}): ${error}. ` +
        "Install it with pip install 'cxlang[lsp]', or set cx.server.command.",
    );
  }
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
