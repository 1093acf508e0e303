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
@description('Whether the app uses Redis (provider rate limits).')
param redisAccess bool
param storageAccountName string
param serviceBusName string
param cosmosAccountName string
param keyVaultName string
param redisName string
param insightsName string
param maximumInstanceCount int
param instanceMemoryMB int
@description('App settings besides the host\'s own.')
param appSettings object

var roles = {
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}
var keyVaultSecretRole = keyVaultRole == 'officer' ? roles.keyVaultSecretsOfficer : roles.keyVaultSecretsUser
// Cosmos DB data-plane role (not an Azure RBAC role): Built-in Data Contributor.
var cosmosDataContributor = '00000000-0000-0000-0000-000000000002'

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

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' existing = {
  name: cosmosAccountName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource redis 'Microsoft.Cache/redis@2024-03-01' existing = {
  name: redisName
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
      appSettings: [for s in items(union(hostSettings, appSettings)): {
        name: s.key
        value: string(s.value)
      }]
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
  name: guid(serviceBus.id, q, site.id, roles.serviceBusDataReceiver)
  scope: receiveQueue[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)
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

resource cosmosData 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: cosmos
  name: guid(cosmos.id, site.id, cosmosDataContributor)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributor}'
    principalId: site.identity.principalId
    scope: cosmos.id
  }
}

resource redisData 'Microsoft.Cache/redis/accessPolicyAssignments@2024-03-01' = if (redisAccess) {
  parent: redis
  name: take('sync-${uniqueString(site.id)}', 60)
  properties: {
    accessPolicyName: 'Data Contributor'
    objectId: site.identity.principalId
    objectIdAlias: name
  }
}

output name string = site.name
output principalId string = site.identity.principalId
