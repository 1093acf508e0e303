// One syncbridge Function App on Flex Consumption: its own plan, one custom-handler
// executable (host.json defaultExecutablePath, see scripts/package), a system-assigned
// managed identity, identity-based settings, and the data-plane roles it needs.

@description('Function App name.')
param name string
param location string
@description('The executable inside the package (host.json defaultExecutablePath).')
param executable string
@description('Service Bus queues this app sends to.')
param sendQueues array
@description('Service Bus queues this app is triggered by.')
param receiveQueues array
@description('Key Vault secrets access: \'\' (none), \'user\' (read) or \'officer\' (read + write versions).')
@allowed(['', 'user', 'officer'])
param keyVaultRole string
param storageAccountName string
param serviceBusName string
param keyVaultName string
param insightsName string
param maximumInstanceCount int
param instanceMemoryMB int
@description('App settings besides the host\'s own.')
param appSettings object
@description('More app settings as [{name, value}] (names computed from parameters).')
param extraSettings array = []

var roles = {
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  // Data Owner, not Receiver, on a trigger's queue: the Functions scale
  // controller reads the queue's message count (a management read), which
  // Data Receiver does not allow (docs/azure.md).
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}
var keyVaultSecretRole = keyVaultRole == 'officer' ? roles.keyVaultSecretsOfficer : roles.keyVaultSecretsUser

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource insights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: insightsName
}

// The deployment package (the zip from scripts/package) lives here.
var packageContainer = 'app-package-${take(uniqueString(name), 12)}'

resource deployments 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: packageContainer
  properties: { publicAccess: 'None' }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${name}'
  location: location
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  // checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy is offered per region (and is a plan property set at creation); turn it on where the region supports it
  properties: { reserved: true }
}

var hostSettings = {
  // Host storage with the managed identity (no connection string, no keys).
  AzureWebJobsStorage__accountName: storage.name
  APPLICATIONINSIGHTS_CONNECTION_STRING: insights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
  RUST_LOG: 'info'
}

var namedSettings = [for s in items(union(hostSettings, appSettings)): {
  name: s.key
  value: string(s.value)
}]

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  kind: 'functionapp,linux'
  // checkov:skip=CKV_AZURE_222: WebhookReceiver must accept provider webhooks from the internet, and the other apps are deployed through the public deployment endpoint; with VNet integration + private endpoints set 'Disabled' on the four non-HTTP apps
  // checkov:skip=CKV_AZURE_17: webhook providers do not present client certificates; requests are authenticated by their HMAC/Ed25519 signatures
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero per function; always-ready instances (scaleAndConcurrency.alwaysReady) are a cost decision, not a default
  // checkov:skip=CKV_AZURE_213: App Service health checks do not apply to Flex Consumption custom handlers; the Functions host probes the handler itself and restarts it
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // The whole set, every deployment: nothing is added by hand (it would
      // vanish on the next deployment).
      appSettings: concat(namedSettings, extraSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${packageContainer}'
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // A custom handler: the host starts host.json's defaultExecutablePath.
      runtime: { name: 'custom', version: '1.0' }
    }
  }
  dependsOn: [ deployments ]
}

// ---- role assignments (data plane only)

resource storageOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, site.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, site.id, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource sendQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = [for q in sendQueues: {
  parent: serviceBus
  name: q
}]

resource sender 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (q, i) in sendQueues: {
  name: guid(serviceBus.id, q, site.id, roles.serviceBusDataSender)
  scope: sendQueue[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataSender)
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
  }
}]

resource receiveQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = [for q in receiveQueues: {
  parent: serviceBus
  name: q
}]

resource receiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (q, i) in receiveQueues: {
  name: guid(serviceBus.id, q, site.id, roles.serviceBusDataOwner)
  scope: receiveQueue[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataOwner)
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
  }
}]

resource secrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(keyVaultRole)) {
  name: guid(keyVault.id, site.id, keyVaultRole)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretRole)
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// The Cosmos DB SQL role assignment and the Redis access policy are made in
// main.bicep, one at a time across all apps (each service refuses concurrent
// changes on one account).

output name string = site.name
output principalId string = site.identity.principalId
